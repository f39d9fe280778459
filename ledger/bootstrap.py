"""Builds the application from settings: the event store, and the schema it lives in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from ledger.adapters.append_only import existing_tables, guard_new_tables
from ledger.application.ledger_app import LedgerApplication, utc_now
from ledger.config import (
    ConfigError,
    event_store_env,
    is_postgres,
    postgres_address,
    postgres_connection,
)


class StoreUnreachable(ConfigError):
    """The PostgreSQL store LEDGER_DATABASE_URL names does not answer, or refuses us."""


@contextmanager
def postgres_setup_lock(env: dict[str, str]) -> Iterator[Any]:
    """Creates the schema and holds a lock on it while the caller creates its tables;
    yields the lock's connection (autocommit).

    Several processes start together over one fresh database (LEDGER_WORKERS servers, a
    projector), and PostgreSQL's CREATE … IF NOT EXISTS is not safe against a concurrent
    one: they failed with "duplicate key value violates unique constraint" or "tuple
    concurrently updated". A session advisory lock, keyed by the schema, makes them take
    turns; the first creates, the others find everything made.

    The schema is created only if missing: PostgreSQL checks CREATE SCHEMA IF NOT EXISTS
    against the right to create schemas before it looks, and the service role `ledger db
    init` makes has no such right.

    This is the first connection a process makes to the store: one that cannot be made,
    or a schema that cannot be created, is refused here in one line naming the store
    (StoreUnreachable), where the library's pool would have retried for half a minute and
    then failed in a traceback."""
    import psycopg
    from psycopg import sql

    schema = env.get("POSTGRES_SCHEMA") or "public"
    lock = (f"ledger-setup:{schema}",)
    with _refused_clearly(env):
        conn = psycopg.connect(**postgres_connection(env), autocommit=True)
    with conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", lock)
        try:
            found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                                 (schema,)).fetchone()
            if not found:
                with _refused_clearly(env):
                    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            yield conn
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", lock)


def may_create_tables(conn: Any, env: dict[str, str]) -> bool:
    """Whether this role owns (or may act as the owner of) the store's schema: the owner
    creates and migrates the tables; any other role (the service role of `ledger db init`)
    finds them made. The library's CREATE TABLE IF NOT EXISTS, CREATE INDEX IF NOT EXISTS
    and CREATE OR REPLACE FUNCTION are checked by PostgreSQL for ownership before it looks
    whether the thing exists, so a role that does not own them must not run them at all."""
    row = conn.execute("SELECT pg_has_role(nspowner, 'USAGE') FROM pg_namespace "
                       "WHERE nspname = %s", (env.get("POSTGRES_SCHEMA") or "public",)
                       ).fetchone()
    return row is None or bool(row[0])


@contextmanager
def _refused_clearly(env: dict[str, str]) -> Iterator[None]:
    import psycopg

    try:
        yield
    except psycopg.Error as error:
        raise StoreUnreachable(
            f"cannot use PostgreSQL at {postgres_address(env)} (database "
            f"{env['POSTGRES_DBNAME']}, user {env['POSTGRES_USER']}; LEDGER_DATABASE_URL): "
            f"{why(error, env['POSTGRES_PASSWORD'])}") from None


def why(error: Exception, password: str) -> str:
    """libpq's reason, on one line, without its preamble or the password."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = text.removeprefix("connection failed: ").removeprefix("connection is bad: ")
    if " failed: " in text and text.startswith("connection to server"):
        text = text.split(" failed: ", 1)[1]
    return text.replace(password, "***") if password else text


def build_application(
    database_url: str,
    clock: Callable[[], datetime] = utc_now,
    app_class: type[LedgerApplication] = LedgerApplication,
    timezone: str = "Asia/Shanghai",
    cache_size: int = 20_000,
) -> LedgerApplication:
    """``cache_size``: aggregates the writer keeps between batches (LEDGER_AGGREGATE_CACHE).

    The history tables this start creates get their append-only guards in the same start,
    before anything is written (see append_only.py)."""
    env: dict[str, Any] = event_store_env(database_url)
    if not is_postgres(env):
        env["CREATE_TABLE"] = "y"
        before = existing_tables(env)
        return _guarded(app_class(env=env, clock=clock, timezone=timezone,
                                  cache_size=cache_size), before)
    with postgres_setup_lock(env) as conn:
        env["CREATE_TABLE"] = "y" if may_create_tables(conn, env) else "n"
        before = existing_tables(env, conn)
        return _guarded(app_class(env=env, clock=clock, timezone=timezone,
                                  cache_size=cache_size), before)


def _guarded(app: LedgerApplication, before: set[str]) -> LedgerApplication:
    try:
        guard_new_tables(app, before)
    except BaseException:
        app.close()
        raise
    return app
