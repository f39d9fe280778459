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
