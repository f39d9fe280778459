"""The ledger command: run the settlement ledger's server and its tools.

Commands: serve, demo, keys, identity-keys, health, project, projections, db, finance, team,
balances, audit. `ledger COMMAND --help` tells what each does and takes."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from ledger import failpoints
from ledger.api.auth import (
    ADMIN,
    FINANCE,
    ROLES,
    STOREFRONT,
    KeyConfigError,
    KeyRing,
    add_key_to_file,
)
from ledger.application.identity_vault import VaultError
from ledger.application.identity_vault import add_key as add_identity_key
from ledger.config import ConfigError, Settings, redact
from ledger.logs import configure_logging
from ledger.runtime import tune_gc

if TYPE_CHECKING:
    from ledger.application.ledger_app import LedgerApplication
    from ledger.clients.sdk import Tls
    from ledger.projections.runner import ProjectionRunner


def serve(settings: Settings) -> int:
    """Serves until SIGINT/SIGTERM, then drains in-flight calls and queued writes.

    With LEDGER_WORKERS=N (PostgreSQL only) it starts N-1 more server processes on the same
    address: the kernel spreads connections over them (SO_REUSEPORT, set for them alone),
    so a host's cores all serve. They are independent, stateless servers over one database,
    exactly as on several hosts. A port another process holds is refused before anything
    starts (see ledger/api/listen.py)."""
    # Set for the workers start_workers starts: they join the port their first process
    # found free, and tell it when they serve.
    ready_fd = os.environ.pop(READY_FD, "")
    metrics_dir = shared_metrics_dir(settings, is_worker=bool(ready_fd))
    try:
        return _serve(settings, ready_fd)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def shared_metrics_dir(settings: Settings, *, is_worker: bool) -> str:
    """With metrics and LEDGER_WORKERS > 1, the first process makes a directory for this run
    where every server process writes its metrics, and names it in PROMETHEUS_MULTIPROC_DIR
    for itself and its workers (set before prometheus-client is imported: see metrics.py);
    returns it, to be removed at the end. A worker inherits it; one process needs none."""
    if is_worker or settings.workers <= 1 or not settings.metrics_listen:
        return ""
    path = tempfile.mkdtemp(prefix="ledger-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def _serve(settings: Settings, ready_fd: str) -> int:
    from ledger.api.listen import check_free
    from ledger.api.server import LedgerServer

    failpoints.arm_from_env()  # a crash test's way in (see failpoints.py); unset: none
    keys = KeyRing.load(file=settings.api_keys_file, inline=settings.api_keys_json)
    if not ready_fd:
        check_free(settings.listen)
    workers = start_workers(settings)

    async def run() -> None:
        server = LedgerServer(settings, keys, share_port=bool(ready_fd) or settings.workers > 1,
                              serve_metrics=not ready_fd)
        await server.start()
        tune_gc()
        if ready_fd:  # a worker tells the first process it serves (see start_workers)
            os.write(int(ready_fd), b"1")
            os.close(int(ready_fd))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop()

    try:
        asyncio.run(run())
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
    return 0


READY_FD = "LEDGER_READY_FD"
WORKER_START_TIMEOUT = 120.0


def start_workers(settings: Settings) -> list[subprocess.Popen[bytes]]:
    """Starts the other N-1 server processes and returns once every one of them serves.

    The first process only starts serving (and reporting healthy) after that, so a health
    check or a load balancer never sees a half-started set, in which the kernel would hand
    every early connection to the one process listening."""
    if settings.workers <= 1:
        return []
    if not settings.database_url.startswith(("postgres://", "postgresql://")):
        raise ConfigError("LEDGER_WORKERS above 1 needs PostgreSQL (LEDGER_DATABASE_URL)")
    if settings.listen.endswith(":0"):
        raise ConfigError("LEDGER_WORKERS above 1 needs a fixed port in LEDGER_LISTEN")
    read_end, write_end = os.pipe()
    env = {**os.environ, "LEDGER_WORKERS": "1", READY_FD: str(write_end)}
    workers = [subprocess.Popen([sys.executable, "-m", "ledger.cli", "serve"], env=env,
                                pass_fds=(write_end,), preexec_fn=_end_with_parent)
               for _ in range(settings.workers - 1)]
    os.close(write_end)
    ready = 0
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while ready < len(workers):
            readable, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))
            # A timeout, or an empty read: every worker that could still write has exited.
            chunk = pipe.read(len(workers) - ready) if readable else b""
            if not chunk:
                for worker in workers:
                    worker.kill()
                raise SystemExit("ledger: a worker process failed to start; see its log above")
            ready += len(chunk)
    return workers


def _end_with_parent() -> None:
    """In a worker, before it runs: SIGTERM when the first process dies, however it dies
    (a SIGTERM or SIGKILL before it could stop its workers), so that no worker is left
    serving, and holding database connections, on its own. Linux's PR_SET_PDEATHSIG;
    elsewhere nothing."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def demo(settings: Settings, keep_serving: bool) -> int:
    """Starts the server on SQLite and plays an admin, a storefront and finance through it
    (clients/demo.py), printing what the ledger recorded."""
    from ledger.api.auth import ApiKey, hash_key, new_key
    from ledger.api.server import LedgerServer, ServerThread
    from ledger.clients.demo import run_demo
    from ledger.clients.sdk import LedgerClient

    platform = f"demo-{int(time.time())}"
    shop_key, admin_key, finance_key = new_key(), new_key(), new_key()
    keys = KeyRing([ApiKey("demo-shop", STOREFRONT, platform, hash_key(shop_key)),
                    ApiKey("demo-admin", ADMIN, platform, hash_key(admin_key)),
                    ApiKey("demo-finance", FINANCE, platform, hash_key(finance_key))])
    if not keep_serving:
        settings = Settings(**{**settings.__dict__, "listen": "127.0.0.1:0"})
    server = LedgerServer(settings, keys)
    server.quiet = True  # the demo prints what it did; a request line per call would bury it
    with ServerThread(server) as running:
        print(f"ledger serving on {running.target}, events in {redact(settings.database_url)}")
        with LedgerClient(running.target, shop_key) as shop, \
                LedgerClient(running.target, admin_key) as admin, \
                LedgerClient(running.target, finance_key) as finance:
            run_demo(admin, shop, finance)
        if keep_serving:
            server.quiet = False  # your own calls are logged
            print(f"\nStorefront key: {shop_key}\nAdmin key:      {admin_key}\n"
                  f"Finance key:    {finance_key}\nServing until Ctrl-C.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return 0


def projection_runner(settings: Settings, batch_size: int | None = None
                      ) -> tuple[LedgerApplication, ProjectionRunner]:
    """The application over the configured store, and a runner for its read models."""
    from ledger.bootstrap import build_application
    from ledger.projections.clock import Calendar
    from ledger.projections.runner import ProjectionRunner

    app = build_application(settings.database_url, timezone=settings.timezone,
                            cache_size=settings.aggregate_cache)
    return app, ProjectionRunner(app, settings.database_url,
                                 memory_limit=settings.projection_cache,
                                 calendar=Calendar(settings.timezone),
                                 batch_size=batch_size or settings.projection_batch)


def project(settings: Settings) -> int:
    """Keeps the read models current from its own process (LEDGER_PROJECTIONS=external on
    the servers), until SIGINT/SIGTERM. A lost database is waited out (the runner retries
    with a bounded backoff and logs the outage once), never a reason to exit."""
    from ledger.application.append_only import require_guards

    app, runner = projection_runner(settings)
    try:
        require_guards(app)  # the read models of a history that can be rewritten are no use
    except ConfigError:
        app.close()
        raise
    signal.signal(signal.SIGTERM, lambda *_: runner.interrupt())
    signal.signal(signal.SIGINT, lambda *_: runner.interrupt())
    runner.setup()
    tune_gc()
    log = structlog.get_logger("ledger.project")
    log.info("projecting", position=runner.position, head=runner.log_head())
    last_report = time.monotonic()

    def report_lag() -> None:
        nonlocal last_report
        if time.monotonic() - last_report > LAG_REPORT_INTERVAL:
            last_report = time.monotonic()
            head = runner.log_head()
            log.info("projection lag", position=runner.position, head=head,
                     lag=head - runner.position)

    # Other servers' commits do not wake this process: it polls for them.
    runner.follow(poll_interval=0.05, after_pass=report_lag)
    runner.stop()
    app.close()
    log.info("projection stopped", position=runner.position)
    return 0


LAG_REPORT_INTERVAL = 10.0


def rebuild(settings: Settings) -> int:
    """Drops every read model and rebuilds it from the whole log, showing progress.

    In larger transactions than a live runner's (LEDGER_REBUILD_BATCH): nobody waits on a
    rebuild's commits, and each batch folds more postings into one write per balance."""
    app, runner = projection_runner(settings, settings.rebuild_batch)
    head = max(runner.log_head(), 1)
    runner.reset(bulk=True)
    started = time.monotonic()
    with terminal_progress("rebuilding read models", head) as advance:
        applied = runner.catch_up(lambda done: advance(runner.position))
    runner.finish_bulk()
    elapsed = time.monotonic() - started
    # Counted in log positions, each an event (bar any a failed write left unused), though
    # only the kinds the read models use are read and applied.
    print(f"rebuilt read models from {applied} events in {elapsed:.2f}s "
          f"({applied / max(elapsed, 1e-9):,.0f} events/s), position {runner.position}; "
          f"{runner.applied} of them of the kinds the read models use")
    runner.stop()
    app.close()
    return 0


@contextmanager
def terminal_progress(what: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on standard error when it is a terminal (rich's, redrawn in place);
    into a file or a pipe nothing at all, so a log keeps no half-drawn bars. Yields the
    function that moves it to a count out of ``total``."""
    if not sys.stderr.isatty():
        yield lambda done: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda done: bar.update(task, completed=done)


def status(settings: Settings) -> int:
    """Prints the log head, the read models' position and the lag between them."""
    from ledger.bootstrap import build_application
    from ledger.projections.reader import ReadModels

    app = build_application(settings.database_url)
    models = ReadModels(settings.database_url)
    head = app.log_position()
    try:
        processed = models.processed_position()
    except Exception:  # no read models yet
        processed = 0
    print(json.dumps({"log_position": head, "processed_position": processed,
                      "lag": head - processed}))
    models.close()
    app.close()
    return 0


def db_init(settings: Settings, args: argparse.Namespace) -> int:
    """Makes the store ready as its owner, and the role the service runs as (db_init.py)."""
    from ledger.config import database_url
    from ledger.db_init import ServiceRole, init_store

    owner_url = database_url(args.owner_url) if args.owner_url else settings.database_url
    # Typed on the command line, a password is shown back in the URL to configure; from the
    # environment (a secret store's), it stays hidden.
    password = args.service_password or os.environ.get("LEDGER_SERVICE_PASSWORD", "")
    role = (ServiceRole(args.service_role or "", password, bool(args.service_password))
            if args.service_role or password else None)
    for line in init_store(owner_url, role):
        print(line)
    return 0


def health(address: str, timeout: float, tls: Tls | None = None) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from ledger.clients.sdk import open_channel

    with open_channel(address, tls) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError as error:
            print(f"unhealthy: {error.code().name}", file=sys.stderr)
            return 1
    print(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("s2b2c-ledger")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def setting_default(defaults: Settings, field: str) -> str:
    """What `serve --help` shows as a setting's default (see config.SETTINGS_HELP)."""
    if field.startswith("="):
        return field[1:]
    return str(getattr(defaults, field)) or "(none)"


def settings_help() -> str:
    """The settings `ledger serve` reads, each with its default, for `serve --help`."""
    from ledger.config import SETTINGS_HELP

    defaults = Settings()
    rows = [(name, setting_default(defaults, field), meaning)
            for name, field, meaning in SETTINGS_HELP]
    width = max(len(name) for name, _, _ in rows)
    lines = ["settings (environment variables, with their defaults):"]
    for name, default, meaning in rows:
        lines.append(f"  {name:<{width}}  {meaning}")
        lines.append(f"  {'':<{width}}  default: {default}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Every command and option of `ledger`, each with its help."""
    parser = argparse.ArgumentParser(prog="ledger", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ledger {version()}",
                        help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("serve", help="run the gRPC server (configured by LEDGER_* variables)",
                   description="Serves the ledger's gRPC API until SIGINT or SIGTERM, then "
                               "drains in-flight calls and queued writes.",
                   epilog=settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    d = sub.add_parser("demo", help="run the server and play a storefront through it")
    d.add_argument("--keep-serving", action="store_true",
                   help="keep serving on LEDGER_LISTEN afterwards, printing the demo keys")
    k = sub.add_parser("keys", help="manage API keys")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    add = ksub.add_parser("add", help="create a key; its hash goes in the file, the key is "
                                      "printed once")
    add.add_argument("--name", required=True, help="storefront id or operator name")
    add.add_argument("--role", required=True, choices=ROLES,
                     help="what the key may call: " + ", ".join(ROLES))
    add.add_argument("--platform", required=True, help="the tenant the key acts for")
    add.add_argument("--file", default="ledger-keys.json", type=Path,
                     help="the keys file to add it to (default ledger-keys.json; made if "
                          "missing)")
    ik = sub.add_parser("identity-keys", help="the keys payees' identities are sealed with")
    iksub = ik.add_subparsers(dest="identity_keys_command", required=True)
    rotate = iksub.add_parser("add", help="add a key and make it current (rotation: older "
                                          "keys stay to open what they sealed)")
    rotate.add_argument("--id", required=True, dest="key_id", help="the new key's id")
    rotate.add_argument("--file", type=Path,
                        help="default: LEDGER_IDENTITY_KEYS_FILE (ledger-data/identity-keys.json)")
    sub.add_parser("project", help="keep the read models current (for LEDGER_PROJECTIONS="
                                   "external servers)")
    p = sub.add_parser("projections", help="read-model maintenance")
    psub = p.add_subparsers(dest="projections_command", required=True)
    psub.add_parser("rebuild", help="drop and rebuild every read model from the log")
    psub.add_parser("status", help="log head, processed position and lag")
    db = sub.add_parser("db", help="the store, as its owner")
    dsub = db.add_subparsers(dest="db_command", required=True)
    init = dsub.add_parser(
        "init", help="create the schema, tables and append-only guards, and (PostgreSQL) the "
                     "role the service connects as; prints the URL to serve with")
    init.add_argument("--owner-url", help="the owner's (or a superuser's) URL "
                                          "(default: LEDGER_DATABASE_URL)")
    init.add_argument("--service-role", help="PostgreSQL role the service connects as "
                                             "(default: ledger_service)")
    init.add_argument("--service-password",
                      help="its password, shown back in the printed URL (or set "
                           "LEDGER_SERVICE_PASSWORD: then it is shown as ***)")
    from ledger.clients import finance_cli
    from ledger.clients.sdk import add_connection_options

    finance_cli.add_arguments(sub.add_parser(
        "finance", help="finance: payable payouts and statements (CSV), account history"))
    from ledger.clients import team_cli

    team_cli.add_arguments(sub.add_parser(
        "team", help="a platform's team tree: import it with the dates its people joined"))
    from ledger.clients import audit_cli, report_cli

    report_cli.add_balances_arguments(sub.add_parser(
        "balances", help="an account kind's balances as a table, in the currency's unit"))

    audit_cli.add_arguments(sub.add_parser(
        "audit", help="auditors: signing keys; verify and replay an export, offline"))
    h = sub.add_parser("health", help="exit 0 when a server answers SERVING")
    h.add_argument("--address", default="127.0.0.1:50051",
                   help="the server's gRPC address (default 127.0.0.1:50051)")
    h.add_argument("--timeout", type=float, default=3.0,
                   help="seconds to wait for the answer (default 3)")
    add_connection_options(h)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ledger.clients import audit_cli, finance_cli, report_cli, team_cli
    from ledger.clients.sdk import tls_from_args

    args = build_parser().parse_args(argv)
    if args.command == "audit":  # needs no settings: a file and keys only
        return audit_cli.run(args)

    try:
        settings = Settings.from_env()
        if args.command == "demo" and not os.environ.get("LEDGER_LOG_LEVEL"):
            # The demo tells a story on standard output: a line per call would drown it.
            settings = Settings(**{**settings.__dict__, "log_level": "warning"})
        # Several server processes share one output: each line says which wrote it.
        configure_logging(settings.log_format, settings.log_level,
                          with_pid=args.command == "serve" and (settings.workers > 1
                                                                or READY_FD in os.environ))
        if args.command == "serve":
            return serve(settings)
        if args.command == "demo":
            if settings.database_url == Settings().database_url:
                settings = Settings(**{**settings.__dict__,
                                       "database_url": "sqlite:///ledger-data/demo.sqlite3"})
            return demo(settings, args.keep_serving)
        if args.command == "project":
            return project(settings)
        if args.command == "projections":
            return rebuild(settings) if args.projections_command == "rebuild" else status(settings)
        if args.command == "db":
            return db_init(settings, args)
        if args.command == "finance":
            return finance_cli.run(args)
        if args.command == "team":
            return team_cli.run(args, settings.timezone)
        if args.command == "identity-keys":
            path = args.file or Path(settings.identity_keys_file)
            add_identity_key(path, args.key_id)
            print(json.dumps({"current": args.key_id, "file": str(path)}))
            return 0
        if args.command == "balances":
            return report_cli.run_balances(args)
        if args.command == "keys":
            key = add_key_to_file(args.file, name=args.name, role=args.role,
                                  platform=args.platform)
            print(json.dumps({"name": args.name, "role": args.role, "platform": args.platform,
                              "key": key, "file": str(args.file)}))
            return 0
        return health(args.address, args.timeout, tls_from_args(args))
    except (ConfigError, KeyConfigError, VaultError, failpoints.FailpointError) as error:
        print(f"ledger: {error}", file=sys.stderr)
        return 2



if __name__ == "__main__":
    sys.exit(main())
