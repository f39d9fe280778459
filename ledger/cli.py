"""The ledger command: run the settlement ledger's server and its tools.

Commands: serve, demo, keys, identity-keys, health, project, projections, db, finance, team,
balances, audit. `ledger COMMAND --help` tells what each does and takes.

This module holds the parser and what each command dispatches to; the server's commands
(serve, demo) are in serving.py, the read models' (project, projections) in projecting.py."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ledger import failpoints
from ledger.adapters.identity_vault import VaultError
from ledger.adapters.identity_vault import add_key as add_identity_key
from ledger.api.auth import ROLES, KeyConfigError, add_key_to_file
from ledger.config import ConfigError, Settings
from ledger.logs import configure_logging
from ledger.projecting import project, rebuild, status
from ledger.serving import READY_FD, demo, serve

if TYPE_CHECKING:
    from ledger.clients.sdk import Tls


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
