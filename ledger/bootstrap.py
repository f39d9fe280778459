"""Builds the application from settings: the event store, and the schema it lives in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from ledger.application.ledger_app import LedgerApplication, utc_now
from ledger.config import event_store_env


@contextmanager
def postgres_setup_lock(env: dict[str, str]) -> Iterator[None]:
    """Creates the schema and holds a lock on it while the caller creates its tables.

    Several processes start together over one fresh database (LEDGER_WORKERS servers, a
    projector), and PostgreSQL's CREATE … IF NOT EXISTS is not safe against a concurrent
    one: they failed with "duplicate key value violates unique constraint" or "tuple
    concurrently updated". A session advisory lock, keyed by the schema, makes them take
    turns; the first creates, the others find everything made."""
    import psycopg
    from psycopg import sql

    schema = env.get("POSTGRES_SCHEMA") or "public"
    with psycopg.connect(
        dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
        user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None, autocommit=True,
        connect_timeout=int(env.get("POSTGRES_CONNECT_TIMEOUT") or 5),
    ) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"ledger-setup:{schema}",))
        try:
            if env.get("POSTGRES_SCHEMA"):
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(schema)))
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"ledger-setup:{schema}",))


def build_application(
    database_url: str,
    clock: Callable[[], datetime] = utc_now,
    app_class: type[LedgerApplication] = LedgerApplication,
    timezone: str = "Asia/Shanghai",
    cache_size: int = 20_000,
) -> LedgerApplication:
    """``cache_size``: aggregates the writer keeps between batches (LEDGER_AGGREGATE_CACHE)."""
    env = event_store_env(database_url)
    env["CREATE_TABLE"] = "y"
    if env["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        return app_class(env=env, clock=clock, timezone=timezone, cache_size=cache_size)
    with postgres_setup_lock(env):
        return app_class(env=env, clock=clock, timezone=timezone, cache_size=cache_size)
