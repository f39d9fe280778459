"""Builds the application from settings: the event store, and the schema it lives in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ledger.application.ledger_app import LedgerApplication, utc_now
from ledger.config import event_store_env


def ensure_postgres_schema(env: dict[str, str]) -> None:
    """The eventsourcing library creates tables but not the schema they live in."""
    schema = env.get("POSTGRES_SCHEMA")
    if not schema:
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
        user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None, autocommit=True,
    ) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def build_application(
    database_url: str,
    clock: Callable[[], datetime] = utc_now,
    app_class: type[LedgerApplication] = LedgerApplication,
    timezone: str = "Asia/Shanghai",
) -> LedgerApplication:
    env = event_store_env(database_url)
    if env["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
        ensure_postgres_schema(env)
    env["CREATE_TABLE"] = "y"
    return app_class(env=env, clock=clock, timezone=timezone)
