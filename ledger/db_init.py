"""``ledger db init``: the store made ready by its owner, and the role the service runs as.

The guards (ledger/adapters/append_only.py) refuse UPDATE, DELETE and TRUNCATE on the
history tables to everyone, their owner included; but an owner may drop a guard. So on
PostgreSQL the service connects as a role of its own: on the history tables (the log and
the audit tables) it may SELECT and INSERT and nothing else, so it can neither rewrite a row
nor remove a guard; the read models (``proj_*``), which the projections create, drop and
rewrite, are its own, and it may create tables in the schema for them. The owner's URL is
for this command and for migrations only.

Run it again at any time: it makes what is missing (a store from before the guards gets
them), hands the read models back to the service role, and sets a new password if given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlparse, urlunparse

from ledger.config import (
    ConfigError,
    event_store_env,
    is_postgres,
    postgres_address,
    postgres_connection,
    redact,
)

DEFAULT_SERVICE_ROLE = "ledger_service"


@dataclass(frozen=True)
class ServiceRole:
    name: str
    password: str = ""  # empty: the role gets none (certificate or trust authentication)
    show_password: bool = False  # typed on the command line: shown back in the URL


def init_store(owner_url: str, role: ServiceRole | None) -> list[str]:
    """Creates the schema, the tables and the guards as the owner, and (PostgreSQL) the
    service role with its privileges; returns the lines to print, the last one the URL the
    service is to be configured with."""
    from ledger.adapters.append_only import (
        history_tables,
        install_missing_guards,
        require_guards,
    )
    from ledger.bootstrap import build_application
    from ledger.projections.reader import ReadModels

    env = event_store_env(owner_url)
    app = build_application(owner_url)
    try:
        installed = install_missing_guards(app)
        require_guards(app)
        history = history_tables(app)
    finally:
        app.close()
    models = ReadModels(owner_url)
    try:
        models.ensure_tables()
    finally:
        models.close()
    lines = [f"history tables (UPDATE, DELETE and TRUNCATE refused by triggers): "
             f"{', '.join(history)}; guards "
             + (f"installed now on {', '.join(installed)}" if installed else "in place")]
    if not is_postgres(env):
        if role is not None:
            raise ConfigError("--service-role: roles are PostgreSQL's; a SQLite store is "
                              "guarded by its triggers and its file's permissions")
        return [f"SQLite store {env['SQLITE_DBNAME']} ready", *lines]
    role = role or ServiceRole(DEFAULT_SERVICE_ROLE)
    try:
        lines += _grant_service_role(env, role, history)
    except Exception as error:
        import psycopg

        if not isinstance(error, psycopg.Error):
            raise
        from ledger.bootstrap import why

        reason = why(error, env["POSTGRES_PASSWORD"])
        raise ConfigError(f"ledger db init: the service role {role.name}: "
                          f"{reason.replace(role.password, '***') if role.password else reason}"
                          ) from None
    url = service_url(owner_url, role)
    lines.append(f"LEDGER_DATABASE_URL={url if role.show_password else redact(url)}")
    return lines


def _grant_service_role(env: dict[str, str], role: ServiceRole, history: Sequence[str]
                        ) -> list[str]:
    import psycopg
    from psycopg import sql

    from ledger.projections.db import TABLES

    schema = env.get("POSTGRES_SCHEMA") or "public"
    name = sql.Identifier(role.name)
    with psycopg.connect(**postgres_connection(env), autocommit=True) as conn, \
            conn.transaction():
        found = conn.execute(
            "SELECT r.rolsuper OR pg_has_role(r.oid, n.nspowner, 'USAGE') "
            "OR pg_has_role(r.oid, c.relowner, 'USAGE') "
            "FROM pg_roles r, pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid "
            "WHERE r.rolname = %s AND n.nspname = %s AND c.relname = %s",
            (role.name, schema, history[0])).fetchone()
        if found and found[0]:
            raise ConfigError(f"--service-role {role.name} is a superuser or may act as the "
                              f"owner of schema {schema}: the service must run as a role "
                              "that cannot drop the guards; name another")
        password = sql.SQL(" PASSWORD {}").format(role.password) if role.password else sql.SQL("")
        if found is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN{}").format(name, password))
            said = f"service role {role.name} created"
        else:
            conn.execute(sql.SQL("ALTER ROLE {} LOGIN{}").format(name, password))
            said = f"service role {role.name} exists" + (
                ", password set" if role.password else "")
        conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(
            sql.Identifier(schema), name))
        for table in history:
            target = sql.Identifier(schema, table)
            conn.execute(sql.SQL("REVOKE ALL ON {} FROM PUBLIC, {}").format(target, name))
            conn.execute(sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(target, name))
        for sequence in _sequences(conn, schema, history):
            conn.execute(sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(
                sql.Identifier(schema, sequence), name))
        # Handing a table to a role takes the right to act as it (PostgreSQL 15 and 16); a
        # superuser has it, an owner with CREATEROLE gives it to itself.
        if not conn.execute("SELECT pg_has_role(%s, 'MEMBER')", (role.name,)).fetchone()[0]:
            conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(name))
        models = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
            (schema, list(TABLES)))]
        for table in models:
            conn.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(
                sql.Identifier(schema, table), name))
    return [f"{said}: SELECT and INSERT only on the history tables; owns the "
            f"{len(models)} read-model tables (proj_*) of schema {schema} at "
            f"{postgres_address(env)} (database {env['POSTGRES_DBNAME']})",
            "use the owner's URL only for `ledger db init` and migrations; run the server, "
            "`ledger project` and `ledger projections rebuild` with this one:"]


def _sequences(conn: Any, schema: str, tables: Sequence[str]) -> list[str]:
    """The sequences the tables' columns draw from (the log's notification_id)."""
    return [row[0] for row in conn.execute(
        "SELECT s.relname FROM pg_class s JOIN pg_namespace n ON n.oid = s.relnamespace "
        "JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid "
        " AND d.refclassid = 'pg_class'::regclass "
        "JOIN pg_class t ON t.oid = d.refobjid "
        "WHERE s.relkind = 'S' AND n.nspname = %s AND t.relname = ANY(%s)",
        (schema, list(tables)))]


def service_url(owner_url: str, role: ServiceRole) -> str:
    """The owner's URL (host, database, schema, libpq parameters) as the service role."""
    url = urlparse(owner_url)
    query = [(k, v) for k, v in parse_qsl(url.query, keep_blank_values=True)
             if k not in ("user", "password")]
    auth = quote(role.name, safe="")
    if role.password:
        auth += ":" + quote(role.password, safe="")
    return urlunparse(url._replace(netloc=f"{auth}@{url.netloc.rpartition('@')[2]}",
                                   query=urlencode(query)))
