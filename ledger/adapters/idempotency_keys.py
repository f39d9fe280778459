"""Idempotency keys in a table of their own, written in the transaction of the events they
answer: the log holds only the business's events.

Each row is a key (platform, principal, key), the fingerprint of the request it was first
used for, the answer (a ResultRef, as the JSON list of its field values) and the answer's
log position: that of the last event the command wrote, or, for a command that wrote none,
the log's head when it committed. The recorders (pg_recorder.py, sqlite_recorder.py) write
the rows after the events, under the log's lock, filling each NewKey's position; the table
is append-only like the log (append_only.py).

Logs written before the table hold their keys as ``IdempotencyRecord`` events, and so do
servers of the older code still writing during a rolling upgrade: a key the table does not
have is looked for there too (by its record's id, in the batch's one prefetch), so their
retries still replay.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import orjson

from ledger.application.idempotency import KeyRecord, NewKey, ResultRef

TABLE = "ledger_idempotency"
KEY_COLUMNS = "platform, principal, idem_key"
COLUMNS = f"{KEY_COLUMNS}, fingerprint, result, position"
CHUNK = 300  # keys per query (SQLite allows 999 parameters)

POSTGRES_DDL = (
    f"CREATE TABLE IF NOT EXISTS {{schema}}.{TABLE} ("
    "platform TEXT NOT NULL, principal TEXT NOT NULL, idem_key TEXT NOT NULL, "
    "fingerprint TEXT NOT NULL, result TEXT NOT NULL, position BIGINT NOT NULL, "
    "PRIMARY KEY (platform, principal, idem_key))",
)
SQLITE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    "platform TEXT NOT NULL, principal TEXT NOT NULL, idem_key TEXT NOT NULL, "
    "fingerprint TEXT NOT NULL, result TEXT NOT NULL, position INTEGER NOT NULL, "
    "PRIMARY KEY (platform, principal, idem_key))",
)


def encode_result(result: ResultRef) -> str:
    return orjson.dumps([result.kind, result.aggregate_id.hex, result.version,
                         result.refund_id, result.published_version, result.settled_count,
                         result.already_imported]).decode()


def decode_result(text: str) -> ResultRef:
    kind, aggregate_id, version, *typed = orjson.loads(text)
    return ResultRef(kind, UUID(aggregate_id), version, *typed)


def positions_of(keys: Sequence[NewKey], written: dict[tuple[UUID, int], int], head: int
                 ) -> None:
    """Each key's position: its command's last event, or ``head`` for a command that wrote
    none."""
    for new in keys:
        new.position = max((written[w] for w in new.writes), default=head)


def rows(keys: Iterable[NewKey], *, positions: bool = True) -> list[tuple[Any, ...]]:
    """The keys' rows; without their positions for ``insert_sql``'s ``position``."""
    return [(k.platform, k.principal, k.key, k.fingerprint, encode_result(k.result),
             *((k.position,) if positions else ())) for k in keys]


def head_sql(events_table: str) -> str:
    """The log's head on SQLite: its last event's position (0 for an empty log)."""
    return f"SELECT COALESCE(MAX(rowid), 0) FROM {events_table}"


def insert_sql(table: str, mark: str, position: str = "") -> str:
    """An insert of a key's row; ``position``, an SQL expression, fills the position in
    place of a parameter."""
    values = [mark] * 5 + [position or mark]
    return f"INSERT INTO {table} ({COLUMNS}) VALUES ({', '.join(values)})"


def select_sql(table: str, mark: str, count: int) -> str:
    """SQLite: the keys as row values (it looks each up by the primary key)."""
    one = f"({mark}, {mark}, {mark})"
    return (f"SELECT {COLUMNS} FROM {table} WHERE ({KEY_COLUMNS}) IN "
            f"({', '.join([one] * count)})")


# PostgreSQL: the keys as three arrays, each looked up through the primary key (LATERAL,
# kept apart by OFFSET 0): as row values IN a list, a table the planner had no statistics
# for yet was read whole for every batch, so writes slowed as the table grew.
SELECT_POSTGRES = (
    "SELECT t.platform, t.principal, t.idem_key, t.fingerprint, t.result, t.position "
    "FROM unnest(%s::text[], %s::text[], %s::text[]) AS k(platform, principal, idem_key) "
    "CROSS JOIN LATERAL (SELECT * FROM {} WHERE platform = k.platform AND "
    "principal = k.principal AND idem_key = k.idem_key OFFSET 0) t")


def found(rows_: Iterable[Sequence[Any]]) -> dict[tuple[str, str, str], KeyRecord]:
    return {(r[0], r[1], r[2]): KeyRecord(r[3], decode_result(r[4]), int(r[5]))
            for r in rows_}
