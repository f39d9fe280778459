"""The database refuses to rewrite the ledger's history: guard triggers on the log and the
audit tables.

Without them anyone who reached the database could ``UPDATE`` an order's Paid event (a
reseller's share 1599 → 91599) or ``DELETE`` an after-sales case, and every balance read or
rebuilt from the log followed the forgery. The guards refuse UPDATE and DELETE of any row
(on PostgreSQL TRUNCATE too) whoever asks, the tables' owner included; on PostgreSQL the
service also connects as a role that may only SELECT and INSERT there (``ledger db init``,
ledger/db_init.py), so it can neither rewrite a row nor drop a guard.

A guard is installed by whoever creates its table, in the start-up that creates it (inside
bootstrap's set-up lock), and by ``ledger db init``. A start never puts back a guard missing
from a table it found already made: that means the guard was removed, or the store predates
guards, and the server refuses to start (``require_guards``) until the owner runs ``ledger
db init`` on purpose.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing, contextmanager
from typing import Any, Protocol

from ledger.adapters.audit_store import TABLES as AUDIT_TABLES
from ledger.adapters.idempotency_keys import TABLE as KEYS_TABLE
from ledger.config import ConfigError, is_postgres

# Guarded: the events table always (its name is the recorder's: ``ledger_events`` on
# PostgreSQL, ``stored_events`` on SQLite), the idempotency keys' table, and the audit
# tables (docs/audit-format.md).

REFUSAL = "the ledger's history is append-only"
FUNCTION = "ledger_append_only"
# The PostgreSQL guard's body: the check at start compares it too, so a function replaced
# by one that lets rows through is no guard.
FUNCTION_BODY = (
    "BEGIN RAISE EXCEPTION '" + REFUSAL.replace("'", "''") + ": % on %.% refused', TG_OP, "
    "TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege', "
    "HINT = 'a correction is a new event: nothing recorded is changed or removed'; END")
# pg_trigger.tgtype: ROW 1 | BEFORE 2 | DELETE 8 | UPDATE 16; BEFORE 2 | TRUNCATE 32.
ROW_TYPE, TRUNCATE_TYPE = 27, 34


class GuardsMissing(ConfigError):
    """A history table lacks its guard (or the log is missing): the server will not serve."""


def guarded_tables(app: Any) -> tuple[str, ...]:
    """The events table (always), then the keys' and the audit tables."""
    return (app.recorder.events_table_name, KEYS_TABLE, *AUDIT_TABLES)


def history_tables(app: Any) -> list[str]:
    """The guarded tables that exist in the store (the log first)."""
    with _store(app) as store:
        existing = store.tables()
    return [t for t in guarded_tables(app) if t in existing]


def existing_tables(env: Mapping[str, str], conn: Any = None) -> set[str]:
    """The tables of the store ``env`` names, before the application is built (PostgreSQL:
    on ``conn``, the set-up lock's connection). What a start-up creates is what was not
    here, and gets its guards from it (``guard_new_tables``)."""
    if is_postgres(env):
        schema = env.get("POSTGRES_SCHEMA") or "public"
        return {row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))}
    path = env["SQLITE_DBNAME"]
    if path == ":memory:":
        return set()
    with closing(sqlite3.connect(path)) as db:
        return {row[0] for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}


def guard_new_tables(app: Any, before: Iterable[str]) -> list[str]:
    """Installs the guards of the history tables this start-up created (those not in
    ``before``); returns their names."""
    with _store(app) as store:
        now, before = store.tables(), set(before)
        new = [t for t in guarded_tables(app) if t in now and t not in before]
        store.install(new)
    return new


def install_missing_guards(app: Any) -> list[str]:
    """``ledger db init``: installs the guard of every history table that lacks one (a
    store made before guards, or one whose guard was removed); returns their names."""
    with _store(app) as store:
        existing = store.tables()
        missing = store.unguarded([t for t in guarded_tables(app) if t in existing])
        store.install(missing)
    return missing


def require_guards(app: Any) -> None:
    """Refuses (GuardsMissing, one line) a store whose log is missing or whose history
    tables lack their guards: the server and ``ledger project`` start only over a history
    that cannot be rewritten."""
    events, *_ = tables = guarded_tables(app)
    with _store(app) as store:
        existing = store.tables()
        unguarded = store.unguarded([t for t in tables if t in existing])
        where = store.where
    if events not in existing:
        raise GuardsMissing(f"{where} has no event log ({events}), and this role may not "
                            "create it: run `ledger db init` with the owner's "
                            "LEDGER_DATABASE_URL first")
    if unguarded:
        raise GuardsMissing(
            f"{where}: {', '.join(unguarded)} {'has' if len(unguarded) == 1 else 'have'} no "
            "append-only guard (the triggers that refuse UPDATE and DELETE), so its history "
            "could be rewritten; the ledger will not serve it: run `ledger db init` with the "
            "owner's LEDGER_DATABASE_URL to install the guards")


class _Store(Protocol):
    where: str

    def tables(self) -> set[str]: ...
    def unguarded(self, tables: list[str]) -> list[str]: ...
    def install(self, tables: list[str]) -> None: ...


@contextmanager
def _store(app: Any) -> Iterator[_Store]:
    from eventsourcing.postgres import PostgresDatastore

    datastore = app.recorder.datastore
    if isinstance(datastore, PostgresDatastore):
        from psycopg.rows import tuple_row

        with datastore.get_connection() as conn, conn.transaction(), \
                conn.cursor(row_factory=tuple_row) as cur:
            yield _Postgres(cur, datastore.schema)
    else:
        with datastore.transaction(commit=True) as cur:
            yield _SQLite(cur)


class _Postgres:
    def __init__(self, cur: Any, schema: str) -> None:
        self.cur = cur
        self.schema = schema
        self.where = f"schema {schema}"

    def tables(self) -> set[str]:
        self.cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (self.schema,))
        return {row[0] for row in self.cur.fetchall()}

    def unguarded(self, tables: list[str]) -> list[str]:
        """Of ``tables``, those without both triggers: each enabled ALWAYS (so not even
        session_replication_role = replica skips it), on every row and column, unconditional,
        calling this schema's guard function with exactly the guard's body."""
        self.cur.execute(
            "SELECT c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgenabled = 'A' "
            " AND t.tgqual IS NULL AND cardinality(t.tgattr::int2[]) = 0 "
            " AND t.tgfoid IN (SELECT p.oid FROM pg_proc p JOIN pg_language l "
            "  ON l.oid = p.prolang AND l.lanname = 'plpgsql' "
            "  WHERE p.pronamespace = n.oid AND p.proname = %s AND p.prosrc = %s) "
            "WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p') "
            "GROUP BY c.relname "
            "HAVING NOT coalesce(bool_or(t.tgname = c.relname || '_append_only' "
            "   AND t.tgtype = %s), false) "
            " OR NOT coalesce(bool_or(t.tgname = c.relname || '_append_only_truncate' "
            "   AND t.tgtype = %s), false)",
            (FUNCTION, FUNCTION_BODY, self.schema, tables, ROW_TYPE, TRUNCATE_TYPE))
        found = {row[0] for row in self.cur.fetchall()}
        return [t for t in tables if t in found]

    def install(self, tables: list[str]) -> None:
        from psycopg.sql import SQL, Identifier

        if not tables:
            return
        function = Identifier(self.schema, FUNCTION)
        self.cur.execute(
            "SELECT p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s AND p.proname = %s", (self.schema, FUNCTION))
        if [row[0] for row in self.cur.fetchall()] != [FUNCTION_BODY]:
            self.cur.execute(SQL(
                "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql "
                "AS $guard${}$guard$").format(function, SQL(FUNCTION_BODY)))
        for name in tables:
            table = Identifier(self.schema, name)
            for trigger, when, each in ((f"{name}_append_only", "UPDATE OR DELETE", "ROW"),
                                        (f"{name}_append_only_truncate", "TRUNCATE",
                                         "STATEMENT")):
                self.cur.execute(SQL(
                    "CREATE OR REPLACE TRIGGER {} BEFORE " + when + " ON {} FOR EACH "
                    + each + " EXECUTE FUNCTION {}()").format(
                        Identifier(trigger), table, function))
                self.cur.execute(SQL("ALTER TABLE {} ENABLE ALWAYS TRIGGER {}").format(
                    table, Identifier(trigger)))


class _SQLite:
    where = "the SQLite store"

    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def tables(self) -> set[str]:
        self.cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in self.cur.fetchall()}

    def unguarded(self, tables: list[str]) -> list[str]:
        """Of ``tables``, those without both triggers exactly as ``install`` writes them."""
        self.cur.execute("SELECT tbl_name, name, sql FROM sqlite_master WHERE type = 'trigger'")
        present = {(row[0], row[1], row[2]) for row in self.cur.fetchall()}
        return [t for t in tables
                if any((t, name, sql) not in present for name, sql in _sqlite_triggers(t))]

    def install(self, tables: list[str]) -> None:
        for table in tables:
            for name, sql in _sqlite_triggers(table):
                self.cur.execute(f'DROP TRIGGER IF EXISTS "{name}"')
                self.cur.execute(sql)


def _sqlite_triggers(table: str) -> list[tuple[str, str]]:
    """(name, statement) of a table's guards, written as SQLite keeps them in sqlite_master."""
    refusal = REFUSAL.replace("'", "''")
    return [(f"{table}_append_only_{op.lower()}",
             f'CREATE TRIGGER "{table}_append_only_{op.lower()}" BEFORE {op} ON "{table}" '
             f"BEGIN SELECT RAISE(ABORT, '{refusal}: {op} on {table} refused'); END")
            for op in ("UPDATE", "DELETE")]
