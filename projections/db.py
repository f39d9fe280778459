"""The read models' database: the same store the events live in (a SQLite file, or the
PostgreSQL database and schema), in tables of their own named ``proj_*``.

Keeping read models beside the log lets the runner update a read model and the position it
has reached in one transaction. The SQL is written once, with ``%s`` placeholders, and runs on
both databases (SQLite gets ``?``).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Protocol

import psycopg

from ledger.config import event_store_env, is_postgres, postgres_connection

# Raised whenever what the read models hold changes meaning; older read models are rebuilt.
# 3: active members count only for teams the member was in when the month began.
# 4: team numbers as DOMAIN.md "Team numbers" defines them, as of a time or a log position:
#    targets and paid orders kept with when and where in the log they were recorded.
# 5: the tree as spans (every ancestor of every member, with when it began and ended), and
#    team counts summed per day, so reads cost what they return, not the team's size.
# 6: team counts summed per hour and per six weeks, so an as-of read costs a bounded number
#    of rows however long the history.
# 7: day statements as a read model: each day's movements by account, currency, bucket and
#    kind, the lines' keys, the closed days and their closing balances; the index of team
#    count changes by log position on (platform, leader, position).
# 8: reconciliation with the payment rail: the ledger's records of what went through the
#    rail, the bills' lines, the breaks of each day.
# 9: payouts with the tax withheld on them, and withholdings per payee for the tax reports.
# 10: an enrolment counted once per leader above (ENROLLED), not as a team size and a
#     joined-in-month change each.
# 11: each key's running balance at the end of every day it moved (proj_day_balances), so an
#     opening balance is one row, before any close as after; no closings written at a close.
# 12: a leader's enrolments counted from its spans (which say whether an enrolment made them)
#     until it has 256 (team_tree.COUNTED_FROM), as count changes and slot sums after.
SCHEMA_VERSION = 12

TABLES = {
    "proj_meta": """
        name TEXT PRIMARY KEY, position BIGINT NOT NULL, schema_version INTEGER NOT NULL,
        updated_at BIGINT NOT NULL""",
    "proj_orders": """
        order_uid TEXT PRIMARY KEY, platform TEXT NOT NULL, order_id TEXT NOT NULL,
        storefront TEXT NOT NULL, seller_id TEXT NOT NULL, currency TEXT NOT NULL,
        ancestors TEXT NOT NULL, freeze_days INTEGER NOT NULL DEFAULT 0, due_at BIGINT,
        open_cases INTEGER NOT NULL DEFAULT 0, settled INTEGER NOT NULL DEFAULT 0""",
    "proj_payouts": """
        payout_id TEXT NOT NULL, platform TEXT NOT NULL, account TEXT NOT NULL,
        currency TEXT NOT NULL, amount BIGINT NOT NULL, status TEXT NOT NULL,
        requested_by TEXT NOT NULL, requested_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
        reference TEXT NOT NULL, reason TEXT NOT NULL, tax BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (platform, payout_id)""",
    "proj_withholdings": """
        platform TEXT NOT NULL, account TEXT NOT NULL, currency TEXT NOT NULL,
        payout_id TEXT NOT NULL, gross BIGINT NOT NULL, tax BIGINT NOT NULL,
        at BIGINT NOT NULL, position BIGINT NOT NULL""",
    "proj_balances": """
        platform TEXT NOT NULL, account TEXT NOT NULL, currency TEXT NOT NULL,
        kind TEXT NOT NULL, frozen BIGINT NOT NULL DEFAULT 0, available BIGINT NOT NULL DEFAULT 0,
        in_flight BIGINT NOT NULL DEFAULT 0, paid_out BIGINT NOT NULL DEFAULT 0,
        clearing BIGINT NOT NULL DEFAULT 0, last_position BIGINT NOT NULL,
        PRIMARY KEY (platform, account, currency)""",
    "proj_movements": """
        platform TEXT NOT NULL, account TEXT NOT NULL, currency TEXT NOT NULL,
        bucket TEXT NOT NULL, position BIGINT NOT NULL, at BIGINT NOT NULL,
        amount BIGINT NOT NULL, kind TEXT NOT NULL, ref TEXT NOT NULL""",
    "proj_day_moves": """
        platform TEXT NOT NULL, day TEXT NOT NULL, account TEXT NOT NULL,
        currency TEXT NOT NULL, bucket TEXT NOT NULL, kind TEXT NOT NULL,
        amount BIGINT NOT NULL,
        PRIMARY KEY (platform, day, account, currency, bucket, kind)""",
    "proj_line_keys": """
        platform TEXT NOT NULL, account TEXT NOT NULL, currency TEXT NOT NULL,
        bucket TEXT NOT NULL, first_day TEXT NOT NULL,
        PRIMARY KEY (platform, account, currency, bucket)""",
    "proj_closed_days": """
        platform TEXT NOT NULL, day TEXT NOT NULL, PRIMARY KEY (platform, day)""",
    "proj_day_balances": """
        platform TEXT NOT NULL, account TEXT NOT NULL, currency TEXT NOT NULL,
        bucket TEXT NOT NULL, day TEXT NOT NULL, balance BIGINT NOT NULL,
        PRIMARY KEY (platform, account, currency, bucket, day)""",
    "proj_owners": """
        uid TEXT PRIMARY KEY, platform TEXT NOT NULL, key TEXT NOT NULL""",
    "proj_resellers": """
        platform TEXT NOT NULL, reseller_id TEXT NOT NULL, sponsor_id TEXT NOT NULL,
        depth INTEGER NOT NULL, direct_count INTEGER NOT NULL, team_size INTEGER NOT NULL,
        rank TEXT NOT NULL, enrolled_at BIGINT NOT NULL, spans_made BIGINT NOT NULL,
        counted INTEGER NOT NULL, PRIMARY KEY (platform, reseller_id)""",
    "proj_links": """
        platform TEXT NOT NULL, reseller_id TEXT NOT NULL, sponsor_id TEXT NOT NULL,
        at BIGINT NOT NULL, position BIGINT NOT NULL""",
    "proj_team_spans": """
        platform TEXT NOT NULL, ancestor TEXT NOT NULL, member TEXT NOT NULL,
        distance INTEGER NOT NULL, from_at BIGINT NOT NULL, from_pos BIGINT NOT NULL,
        enrolled INTEGER NOT NULL, to_at BIGINT NOT NULL, to_pos BIGINT NOT NULL""",
    "proj_team_counts": """
        platform TEXT NOT NULL, leader TEXT NOT NULL, metric TEXT NOT NULL,
        bucket TEXT NOT NULL, level INTEGER NOT NULL, slot BIGINT NOT NULL,
        delta BIGINT NOT NULL,
        PRIMARY KEY (platform, leader, metric, bucket, level, slot)""",
    "proj_team_count_changes": """
        platform TEXT NOT NULL, leader TEXT NOT NULL, metric TEXT NOT NULL,
        bucket TEXT NOT NULL, at BIGINT NOT NULL, position BIGINT NOT NULL,
        delta BIGINT NOT NULL""",
    "proj_active_first": """
        platform TEXT NOT NULL, member TEXT NOT NULL, month TEXT NOT NULL, at BIGINT NOT NULL,
        PRIMARY KEY (platform, member, month)""",
    "proj_team_stats": """
        platform TEXT NOT NULL, reseller_id TEXT NOT NULL, month TEXT NOT NULL,
        metric TEXT NOT NULL, currency TEXT NOT NULL, value BIGINT NOT NULL,
        PRIMARY KEY (platform, reseller_id, month, metric, currency)""",
    "proj_team_targets": """
        platform TEXT NOT NULL, reseller_id TEXT NOT NULL, month TEXT NOT NULL,
        currency TEXT NOT NULL, amount BIGINT NOT NULL, at BIGINT NOT NULL,
        position BIGINT NOT NULL""",
    "proj_rail_records": """
        platform TEXT NOT NULL, kind TEXT NOT NULL, ref TEXT NOT NULL, day TEXT NOT NULL,
        amount BIGINT NOT NULL, currency TEXT NOT NULL, state TEXT NOT NULL""",
    "proj_rail_bills": """
        platform TEXT NOT NULL, digest TEXT NOT NULL, day TEXT NOT NULL, kind TEXT NOT NULL,
        lines BIGINT NOT NULL, position BIGINT NOT NULL, PRIMARY KEY (platform, digest)""",
    "proj_rail_lines": """
        platform TEXT NOT NULL, digest TEXT NOT NULL, day TEXT NOT NULL,
        bill_kind TEXT NOT NULL, kind TEXT NOT NULL, ref TEXT NOT NULL, rail_ref TEXT NOT NULL,
        amount BIGINT NOT NULL, currency TEXT NOT NULL, state TEXT NOT NULL,
        at TEXT NOT NULL""",
    "proj_breaks": """
        platform TEXT NOT NULL, day TEXT NOT NULL, break_id TEXT NOT NULL,
        bill_kind TEXT NOT NULL, kind TEXT NOT NULL, ref TEXT NOT NULL, type TEXT NOT NULL,
        status TEXT NOT NULL, resolved_by TEXT NOT NULL, reason TEXT NOT NULL,
        acknowledged_by TEXT NOT NULL, ledger TEXT NOT NULL, bill TEXT NOT NULL,
        PRIMARY KEY (platform, day, break_id)""",
    "proj_reconciled": """
        platform TEXT NOT NULL, day TEXT NOT NULL, bill_kind TEXT NOT NULL,
        matched BIGINT NOT NULL, timing BIGINT NOT NULL,
        PRIMARY KEY (platform, day, bill_kind)""",
}

# Tables older read models had and these do not: a rebuild drops them too.
RETIRED_TABLES = ("proj_day_closings",)

# name: (table, columns). The read models' writers look rows up through the first two while
# they apply the log; the others serve only the queries, so a rebuild makes those once, at
# the end (an index built from the whole table is far cheaper than one kept up row by row).
INDEXES = {
    "proj_resellers_sponsor": ("proj_resellers", "platform, sponsor_id"),
    "proj_links_reseller": ("proj_links", "platform, reseller_id, at"),
    "proj_movements_account_at": ("proj_movements", "platform, account, at, position"),
    "proj_movements_time": ("proj_movements", "platform, at"),
    "proj_orders_due": ("proj_orders", "platform, settled, due_at"),
    "proj_payouts_status": ("proj_payouts", "platform, status, payout_id"),
    "proj_withholdings_time": ("proj_withholdings", "platform, at"),
    "proj_balances_kind": ("proj_balances", "platform, kind, account"),
    "proj_day_moves_line": ("proj_day_moves", "platform, account, currency, bucket, day"),
    "proj_team_spans_down": ("proj_team_spans", "platform, ancestor, distance, member"),
    "proj_team_spans_up": ("proj_team_spans", "platform, member, distance"),
    "proj_team_count_changes_key": ("proj_team_count_changes",
                                    "platform, leader, metric, bucket, at"),
    # Not on (…, metric, bucket, position): with that, a fresh table's planner, knowing no
    # better, took it for the reads of an hour's changes and walked every change there was.
    "proj_team_count_changes_recorded": ("proj_team_count_changes",
                                         "platform, leader, position"),
    "proj_team_targets_key": ("proj_team_targets", "platform, reseller_id, month, currency"),
    "proj_rail_records_ref": ("proj_rail_records", "platform, kind, ref"),
    "proj_rail_records_day": ("proj_rail_records", "platform, day, kind"),
    "proj_rail_lines_day": ("proj_rail_lines", "platform, bill_kind, day, ref"),
}
WRITER_INDEXES = ("proj_resellers_sponsor", "proj_links_reseller", "proj_team_spans_down",
                  "proj_team_spans_up", "proj_rail_records_ref", "proj_rail_records_day",
                  "proj_rail_lines_day")


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


PG_TYPES = {"TEXT": "text", "BIGINT": "int8", "INTEGER": "int4"}
# Each table's column types, as binary COPY needs them named: {table: {column: type}}.
COLUMN_TYPES = {
    table: {name: PG_TYPES[kind] for name, kind in re.findall(r"(\w+) (TEXT|BIGINT|INTEGER)",
                                                                columns)}
    for table, columns in TABLES.items()
}


def append_rows(cur: Cursor, table: str, columns: Sequence[str],
                rows: Sequence[Sequence[Any]]) -> None:
    """Appends rows to a history table: COPY on PostgreSQL (far cheaper than one INSERT per
    row), executemany on SQLite. The COPY is binary: neither side formats or parses text
    (a tenth of a rebuild's own time went to writing the rows out as text)."""
    if not rows:
        return
    copy = getattr(cur, "copy", None)
    if copy is not None:
        types = COLUMN_TYPES[table.removeprefix("staging_")]
        with copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as pipe:
            pipe.set_types([types[c] for c in columns])
            for row in rows:
                pipe.write_row(row)
        return
    marks = ", ".join(["%s"] * len(columns))
    cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


# Below this many rows an upsert is sent as it is; above, through COPY (one round trip for
# the data, one statement for the merge, instead of a statement per row).
COPY_UPSERT_MIN = 64


def upsert_rows(cur: Cursor, table: str, columns: Sequence[str], key: Sequence[str],
                updates: str, rows: Sequence[Sequence[Any]]) -> None:
    """INSERT … ON CONFLICT (key) DO UPDATE SET ``updates`` for each row (rows' keys must be
    distinct). On PostgreSQL, many rows go by COPY into a temporary table emptied at commit,
    then one INSERT … SELECT merges them: a rebuild writes thousands of rows per batch."""
    if not rows:
        return
    names = ", ".join(columns)
    conflict = f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    if getattr(cur, "copy", None) is not None and len(rows) >= COPY_UPSERT_MIN:
        staging = f"staging_{table}"
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {staging} "
                    f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        append_rows(cur, staging, columns, rows)
        cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} {conflict}")
        return
    marks = ", ".join(["%s"] * len(columns))
    cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks}) {conflict}", rows)


class _SQLiteCursor:
    """sqlite3 with the ``%s`` placeholders the PostgreSQL driver uses."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cursor.execute(sql.replace("%s", "?"), tuple(params))

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any:
        return self._cursor.executemany(sql.replace("%s", "?"), params)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()


class StoreUnavailable(Exception):
    """The read models' database cannot be reached now: the connection was lost (a restart,
    a failover, a terminated backend) or cannot be made. Retryable: the next use connects
    again."""


# What a lost or refused connection raises: psycopg's OperationalError covers a server that
# went away (AdminShutdown), one that refuses connections and a pool that timed out;
# InterfaceError a connection already closed.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (psycopg.OperationalError,
                                                  psycopg.InterfaceError)


class Link:
    """One connection to the read models' database that replaces itself after a failure.

    A psycopg connection whose server went away stays broken for good: every use raised
    again, so the read side never recovered without a restart. A link closes a connection
    that failed and connects afresh on its next use; the failure itself surfaces as
    ``StoreUnavailable``, which callers answer as retryable."""

    def __init__(self, db: ProjectionDB) -> None:
        self.db = db
        self._conn: Any = None

    @property
    def connected_now(self) -> bool:
        """Whether a connection is held (it may have been lost since it was last used)."""
        return self._conn is not None

    def connection(self) -> Any:
        conn = self._conn
        if conn is not None and getattr(conn, "closed", False):
            self.discard()
            conn = None
        if conn is None:
            try:
                conn = self._conn = self.db.connect()
            except CONNECTION_ERRORS as error:
                raise StoreUnavailable(f"cannot connect to the read models' database: "
                                       f"{error}") from error
        return conn

    @contextmanager
    def connected(self) -> Iterator[Any]:
        """The connection, for work of several transactions (creating the tables)."""
        try:
            yield self.connection()
        except CONNECTION_ERRORS as error:
            self.discard()
            raise StoreUnavailable(f"lost the read models' database: {error}") from error

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Cursor]:
        with self.connected() as conn, self.db.transaction(conn, write=write) as cur:
            yield cur

    def discard(self) -> None:
        """Closes the connection (quietly: it may be broken already)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                conn.close()


class ProjectionDB:
    """Connections to the read models' database, one per thread of use."""

    def __init__(self, database_url: str) -> None:
        self.env = event_store_env(database_url)
        self.is_postgres = is_postgres(self.env)

    def connect(self) -> Any:
        if self.is_postgres:
            # The URL's libpq parameters (sslmode, connect_timeout…) too, and its options
            # before the schema's.
            kwargs = postgres_connection(self.env)
            if "POSTGRES_SCHEMA" in self.env:
                kwargs["options"] = " ".join(filter(None, (
                    kwargs.get("options"), f"-c search_path={self.env['POSTGRES_SCHEMA']}")))
            return psycopg.connect(**kwargs, autocommit=True)
        conn = sqlite3.connect(self.env["SQLITE_DBNAME"], timeout=30, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    @contextmanager
    def transaction(self, conn: Any, *, write: bool = True) -> Iterator[Cursor]:
        """One transaction; on SQLite a write transaction takes the write lock up front."""
        if self.is_postgres:
            with conn.transaction(), conn.cursor() as cur:
                yield cur
            return
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield _SQLiteCursor(cur)
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()

    def create(self, conn: Any, *, query_indexes: bool = True) -> None:
        """Makes whatever is missing. ``query_indexes=False`` leaves out the indexes only the
        queries use, for a rebuild to make with ``create_indexes`` once it is done; until
        then the queries are slow but right, and the next ``create`` makes them anyway."""
        with self.transaction(conn) as cur:
            self._lock_schema(cur)
            for name, columns in TABLES.items():
                cur.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")
        self.create_indexes(conn, INDEXES if query_indexes else WRITER_INDEXES)

    def _lock_schema(self, cur: Cursor) -> None:
        """Serialises changes to the read models' tables between processes: PostgreSQL's
        CREATE … IF NOT EXISTS is not safe against a concurrent one (a server and a
        projector starting together: "duplicate key value violates unique constraint
        pg_type_typname_nsp_index"). SQLite's write transaction already serialises them."""
        if self.is_postgres:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.proj'))")

    def create_indexes(self, conn: Any, names: Iterable[str] = INDEXES) -> None:
        with self.transaction(conn) as cur:
            self._lock_schema(cur)
            for name in names:
                table, columns = INDEXES[name]
                cur.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})")

    def analyze(self, conn: Any) -> None:
        """Fresh statistics for PostgreSQL's planner, after a rebuild wrote every table at
        once (until autovacuum gets there, a planner without them may pick a poor index)."""
        if self.is_postgres:
            with self.transaction(conn) as cur:
                cur.execute(f"ANALYZE {', '.join(TABLES)}")

    def drop(self, conn: Any) -> None:
        with self.transaction(conn) as cur:
            self._lock_schema(cur)
            for name in (*TABLES, *RETIRED_TABLES):
                cur.execute(f"DROP TABLE IF EXISTS {name}")
                if self.is_postgres:  # upsert_rows' staging copy, made LIKE the old table
                    cur.execute(f"DROP TABLE IF EXISTS pg_temp.staging_{name}")
