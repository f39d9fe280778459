"""What PostgreSQL alone can do on this machine with the ledger's own rows, with no Python
deciding anything: the most any ledger written over this database could reach.

The bulk target is counted in log entries written per second, and each entry is one row of
the events table, inserted the way the ledger's recorder inserts them: under the lock that
keeps positions in commit order, so one transaction at a time. (The recorder also writes
one audit-tree row per entry in the same transaction; the ceiling leaves them out, so it
stays the log's own ceiling.) Inserting the bulk
import's very rows again, in transactions of the import's size, into a scratch table shaped
like the log (its indexes, its sequence) measures that ceiling in the same run as the import.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import psycopg
from psycopg import sql

from bench.cpu import one_process_cpu
from ledger.config import event_store_env, postgres_connection

EVENTS_TABLE = "ledger_events"  # the eventsourcing library's name for application "Ledger"


@dataclass(frozen=True)
class Ceiling:
    rows: int
    seconds: float
    database_cpu: float  # CPU seconds of the PostgreSQL backend that did the inserts

    @property
    def rate(self) -> float:
        return self.rows / max(self.seconds, 1e-9)

    @property
    def cpu_us_per_row(self) -> float:
        return self.database_cpu / max(self.rows, 1) * 1e6


def event_inserts(url: str, first: int, last: int, per_transaction: int) -> Ceiling:
    """Inserts the log's entries ``first``..``last`` again (new ids, same versions, topics
    and bytes) into a scratch copy of the events table, ``per_transaction`` rows at a time,
    as the ledger's recorder does: lock, one INSERT of typed arrays, RETURNING the ids."""
    env = event_store_env(url)
    schema = env["POSTGRES_SCHEMA"]
    events = sql.Identifier(schema, EVENTS_TABLE)
    scratch = sql.Identifier(schema, "ceiling_events")
    sequence = sql.Identifier(schema, "ceiling_events_seq")
    with psycopg.connect(**postgres_connection(env), autocommit=True) as conn:
        rows = conn.execute(
            sql.SQL("SELECT originator_version, topic, state FROM {} WHERE notification_id "
                    "BETWEEN %s AND %s ORDER BY notification_id").format(events),
            (first, last)).fetchall()
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(scratch))
        conn.execute(sql.SQL("DROP SEQUENCE IF EXISTS {}").format(sequence))
        conn.execute(sql.SQL("CREATE SEQUENCE {}").format(sequence))
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(scratch, events))
        conn.execute(sql.SQL("ALTER TABLE {} ALTER notification_id SET DEFAULT nextval({})")
                     .format(scratch, sql.Literal(f"{schema}.ceiling_events_seq")))
        insert = sql.SQL(
            "INSERT INTO {} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id").format(scratch)
        lock = sql.SQL("SELECT pg_advisory_xact_lock(hashtext({}))").format(
            sql.Literal(f"ledger-ceiling:{schema}"))
        batches = [[(uuid.uuid4(), *row) for row in rows[n:n + per_transaction]]
                   for n in range(0, len(rows), per_transaction)]
        pid = conn.info.backend_pid
        cpu_before, started = one_process_cpu(pid), time.perf_counter()
        for batch in batches:
            with conn.transaction():
                conn.execute(lock)
                conn.execute(insert, ([r[0] for r in batch], [r[1] for r in batch],
                                      [r[2] for r in batch], [r[3] for r in batch])).fetchall()
        seconds = time.perf_counter() - started
        cpu = one_process_cpu(pid) - cpu_before
        conn.execute(sql.SQL("DROP TABLE {}").format(scratch))
        conn.execute(sql.SQL("DROP SEQUENCE {}").format(sequence))
    return Ceiling(len(rows), seconds, cpu)


def read_model_copies(url: str) -> Ceiling:
    """The rebuild's ceiling: PostgreSQL alone writing the rows a rebuild wrote.

    Called after a rebuild over ``url``: every ``proj_*`` table's rows are read out by
    binary COPY, then written by binary COPY into fresh tables of the same shape in a
    scratch schema, one transaction per table, and given the same indexes (its primary key
    among them) once loaded, as a rebuild builds its queries' indexes. The rows go as the
    bytes PostgreSQL sent, so no Python touches a row. The rows counted are the tables'
    rows; a rebuild wrote some of them more than once (a balance is upserted per batch), so
    this is the least a rebuild's writing could cost. The read models' database and the
    log's are the same, so the scratch schema sits beside the ledger's and is dropped at the
    end. The CPU is the one PostgreSQL backend's that did the writing."""
    schema = event_store_env(url)["POSTGRES_SCHEMA"]
    scratch = f"{schema}_ceiling"
    with psycopg.connect(**postgres_connection(event_store_env(url)), autocommit=True) as conn:
        tables = [name for (name,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE "
            "'proj\\_%%' ORDER BY tablename", (schema,))]
        indexes = conn.execute(
            "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename "
            "= ANY(%s) ORDER BY tablename, indexname", (schema, tables)).fetchall()
        data = {table: _copied_out(conn, sql.Identifier(schema, table)) for table in tables}
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(scratch)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(scratch)))
        try:
            for table in tables:  # the tables' shape only: no index yet
                conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(
                    sql.Identifier(scratch, table), sql.Identifier(schema, table)))
            pid = conn.info.backend_pid
            cpu_before, started = one_process_cpu(pid), time.perf_counter()
            written = 0
            for table in tables:
                with conn.transaction():
                    written += _copied_in(conn, sql.Identifier(scratch, table), data[table][0])
                    for name, definition in indexes:
                        if name == table:
                            conn.execute(_moved(definition, schema, scratch, table))
            seconds = time.perf_counter() - started
            cpu = one_process_cpu(pid) - cpu_before
        finally:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(scratch)))
    expected = sum(rows for _, rows in data.values())
    assert written == expected, f"wrote {written} read-model rows of {expected}"
    return Ceiling(written, seconds, cpu)


def _copied_out(conn: psycopg.Connection, table: sql.Identifier) -> tuple[bytes, int]:
    """A table's rows as binary COPY sends them, and how many."""
    chunks: list[bytes] = []
    with conn.cursor() as cur:
        with cur.copy(sql.SQL("COPY {} TO STDOUT (FORMAT BINARY)").format(table)) as copy:
            for chunk in copy:
                chunks.append(bytes(chunk))
        return b"".join(chunks), cur.rowcount


def _copied_in(conn: psycopg.Connection, table: sql.Identifier, data: bytes) -> int:
    """Writes binary COPY data into a table; how many rows it held."""
    with conn.cursor() as cur:
        with cur.copy(sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(table)) as copy:
            for start in range(0, len(data), COPY_CHUNK):
                copy.write(data[start:start + COPY_CHUNK])
        return cur.rowcount


COPY_CHUNK = 1 << 20


def _moved(definition: str, schema: str, scratch: str, table: str) -> sql.Composed:
    """An index's definition (as pg_indexes gives it) on the scratch schema's copy of its
    table. The index keeps its name: names are per schema."""
    source = f" ON {schema}.{table} "
    assert source in definition, definition
    return sql.SQL(definition.replace(source, f" ON {scratch}.{table} "))  # type: ignore[arg-type]
