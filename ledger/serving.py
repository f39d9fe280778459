"""`ledger serve` and `ledger demo`: the gRPC server in one process or in LEDGER_WORKERS of
them sharing one port, and the demo that plays a platform's people through it."""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from ledger import failpoints
from ledger.api.auth import ADMIN, FINANCE, STOREFRONT, KeyRing
from ledger.config import ConfigError, Settings, redact
from ledger.runtime import tune_gc


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
