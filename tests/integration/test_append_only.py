"""The database refuses to rewrite the ledger's history (issue 14), on the stores themselves.

Tried as an attacker with database access would: an UPDATE of an order's Paid event (a
reseller's share 1599 → 91599) and a DELETE of an after-sales event had both succeeded, and
the forged share was served at once. Now guard triggers refuse UPDATE and DELETE (and, on
PostgreSQL, TRUNCATE) of the log and the audit tables whoever asks, and the service on
PostgreSQL connects as a role that may only SELECT and INSERT there. A server and `ledger db
init` as processes, refusing a store whose guards are gone and serving as the service role,
are in tests/e2e/test_append_only.py.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from ledger.adapters.append_only import (
    GuardsMissing,
    guarded_tables,
    history_tables,
    require_guards,
)
from ledger.application import commands as c
from ledger.application.ledger_app import LedgerApplication
from ledger.bootstrap import build_application
from ledger.config import ConfigError
from ledger.db_init import ServiceRole, init_store
from tests.conftest import POSTGRES_URL, Clock, drop_schema
from tests.helpers import shares
from tests.integration.test_event_log import SHOP, run, tea, team_commands

REFUSED = "the ledger's history is append-only"


def owner_sql(store_url: str) -> Any:
    """A connection to the store as its owner (the tests' superuser), outside the ledger."""
    if store_url.startswith("sqlite"):
        return closing(sqlite3.connect(store_url.removeprefix("sqlite:///"),
                                       isolation_level=None))
    return psycopg.connect(store_url.split("?", 1)[0], autocommit=True)


def schema_of(url: str) -> str:
    return url.rsplit("schema=", 1)[1].split("&", 1)[0]


def test_the_owner_cannot_rewrite_a_paid_order_or_delete_an_event(
    app: LedgerApplication, store_url: str, clock: Clock,
) -> None:
    """The issue's attack, as the tables' owner: the triggers refuse it whoever asks."""
    run(app, *team_commands(), c.PlaceOrder("p1", "O1", "c1", "carol", "CNY", tea()),
        c.PayOrder("pay1", "O1", "w1", 9999))
    assert shares(app.order(SHOP, "O1"))["reseller:carol"] == 1599
    postgres = not store_url.startswith("sqlite")
    events = "ledger_events" if postgres else "stored_events"
    table = f"{schema_of(store_url)}.{events}" if postgres else events
    forge = (f"UPDATE {table} SET state = convert_to(replace(convert_from(state, "
             "'UTF8'), '1599', '91599'), 'UTF8') WHERE topic LIKE '%Order.Paid'"
             ) if postgres else (
             f"UPDATE {table} SET state = CAST(replace(CAST(state AS TEXT), '1599', "
             "'91599') AS BLOB) WHERE topic LIKE '%Order.Paid'")
    attacks = [forge, f"DELETE FROM {table} WHERE topic LIKE '%Order.Paid'",
               f"DELETE FROM {table}"]
    if postgres:
        attacks.append(f"TRUNCATE {table}")
    with owner_sql(store_url) as conn:
        for attack in attacks:
            with pytest.raises((errors.InsufficientPrivilege, sqlite3.IntegrityError),
                               match=REFUSED):
                conn.execute(attack)
    fresh = build_application(store_url, clock)  # nothing remembered: read from the store
    try:
        assert shares(fresh.order(SHOP, "O1"))["reseller:carol"] == 1599
    finally:
        fresh.close()


@pytest.mark.parametrize("tamper", ["drop", "disable", "replace the function"])
@pytest.mark.postgres
def test_a_guard_removed_disabled_or_hollowed_out_is_found_missing(
    postgres_url: str, tamper: str,
) -> None:
    app = build_application(postgres_url)
    require_guards(app)
    table = sql.Identifier(schema_of(postgres_url), "ledger_events")
    trigger = sql.Identifier("ledger_events_append_only")
    statement = {
        "drop": sql.SQL("DROP TRIGGER {} ON {}").format(trigger, table),
        "disable": sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(table, trigger),
        "replace the function": sql.SQL(
            "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql "
            "AS $$BEGIN RETURN NEW; END$$").format(
                sql.Identifier(schema_of(postgres_url), "ledger_append_only")),
    }[tamper]
    try:
        with owner_sql(postgres_url) as conn:
            conn.execute(statement)
        # The function is every table's guard: replaced, every table is named.
        with pytest.raises(GuardsMissing,
                           match=r": ledger_events(, \w+)* ha(s|ve) no append-only guard"):
            require_guards(app)
    finally:
        app.close()


@dataclass
class ServiceStore:
    owner_url: str
    service_url: str
    role: str


@pytest.fixture
def service_store(postgres_url: str) -> Iterator[ServiceStore]:
    """A store made by `ledger db init`, and its service role (roles are cluster-wide: a
    name of its own, dropped afterwards with everything it owns and was granted)."""
    role = f"ledger_svc_{uuid.uuid4().hex[:12]}"
    owner_url = f"{postgres_url}&pool_size=2"
    try:
        lines = init_store(owner_url, ServiceRole(role, "svc-pw", show_password=True))
        yield ServiceStore(owner_url, lines[-1].removeprefix("LEDGER_DATABASE_URL="), role)
    finally:
        drop_schema(postgres_url)
        drop_role(role)


def drop_role(role: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# The audit tables of docs/audit-format.md.
AUDIT_COLUMNS = {
    "audit_entries": "platform text, seq bigint, position bigint, recorded_at bigint, "
                     "hashes bytea",
    "audit_heads": "platform text, tree_size bigint, root bytea, signed_at bigint, "
                   "key_id text, signature bytea, reason text",
    "audit_keys": "key_id text, public_key bytea, first_used_at bigint",
}


# A row each, for the attacks to have something to rewrite.
AUDIT_ROWS = {
    "audit_entries": ("acme", 10**9, 10**9, 0, b"\x00" * 32),
    "audit_heads": ("acme", 1, b"\x00" * 32, 0, "k", b"s", "test"),
    "audit_keys": ("k-test", b"\x00" * 32, 0),
}


def audit_tables_as_documented(owner_url: str) -> None:
    """The audit tables (made here if the ledger has not made them), each with a row."""
    schema = schema_of(owner_url)
    with owner_sql(owner_url) as conn:
        for table, columns in AUDIT_COLUMNS.items():
            name = sql.Identifier(schema, table)
            if not conn.execute("SELECT to_regclass(%s)", (f"{schema}.{table}",)).fetchone()[0]:
                conn.execute(sql.SQL("CREATE TABLE {} ({})").format(name, sql.SQL(columns)))
            marks = sql.SQL(", ").join([sql.Placeholder()] * len(AUDIT_ROWS[table]))
            conn.execute(sql.SQL("INSERT INTO {} VALUES ({})").format(name, marks),
                         AUDIT_ROWS[table])


@pytest.mark.postgres
def test_the_service_role_may_only_read_and_append_the_history(
    service_store: ServiceStore,
) -> None:
    """As the service role, UPDATE, DELETE and TRUNCATE of every history table fail (its
    privileges), and as the owner UPDATE, DELETE and TRUNCATE fail too (the triggers); the
    audit tables, made after the first `ledger db init`, get their guards from the next."""
    app = build_application(service_store.service_url)  # a write, as the service
    try:
        require_guards(app)
        from ledger.application import commands as c

        [outcome] = app.run_batch([(c.Caller("acme", "ops", "admin"),
                                    c.EnrollReseller("e-alice", "alice", "", "", True))])
        assert not isinstance(outcome, BaseException), outcome
    finally:
        app.close()
    audit_tables_as_documented(service_store.owner_url)
    lines = init_store(service_store.owner_url, ServiceRole(service_store.role))
    assert "LEDGER_DATABASE_URL=" in lines[-1] and "svc-pw" not in "\n".join(lines)
    app = build_application(service_store.owner_url)
    try:
        tables = history_tables(app)
        require_guards(app)
    finally:
        app.close()
    assert tables[0] == "ledger_events" and set(AUDIT_COLUMNS) <= set(tables)
    assert set(tables) <= set(guarded_tables(app))
    schema = schema_of(service_store.owner_url)
    service = psycopg.connect(service_store.service_url.split("?", 1)[0], autocommit=True)
    with service, owner_sql(service_store.owner_url) as owner:
        for table in tables:
            name = sql.Identifier(schema, table)
            rows = service.execute(sql.SQL("SELECT count(*) FROM {}").format(name)).fetchone()
            assert rows[0] >= 1, table
            first = owner.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = %s ORDER BY ordinal_position LIMIT 1", (schema, table)
            ).fetchone()[0]
            attacks = [sql.SQL("UPDATE {} SET {} = {}").format(
                           name, sql.Identifier(first), sql.Identifier(first)),
                       sql.SQL("DELETE FROM {}").format(name),
                       sql.SQL("TRUNCATE {}").format(name)]
            for attack in attacks:
                with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
                    service.execute(attack)
                with pytest.raises(errors.InsufficientPrivilege, match=REFUSED):
                    owner.execute(attack)
            with pytest.raises(errors.InsufficientPrivilege, match="must be owner"):
                service.execute(sql.SQL("DROP TRIGGER {} ON {}").format(
                    sql.Identifier(f"{table}_append_only"), name))
            after = service.execute(sql.SQL("SELECT count(*) FROM {}").format(name)).fetchone()
            assert after == rows, table


@pytest.mark.postgres
def test_db_init_refuses_a_service_role_that_could_drop_the_guards(postgres_url: str) -> None:
    try:
        with pytest.raises(ConfigError, match="is a superuser or may act as"):
            init_store(f"{postgres_url}&pool_size=2", ServiceRole("postgres"))
    finally:
        drop_schema(postgres_url)
