"""Reading many aggregates in one round trip: what the ledger's recorders add to the
library's.

The repository loads one aggregate per query; a batch of commands needs dozens. These read
the eventsourcing library's own events table for many ids at once (its documented layout:
originator_id, originator_version, topic, state); the application turns the stored events
into domain events with its mapper, exactly as ``Repository.get`` would. A writer that
already holds an aggregate asks only for the events written after the version it holds.

``StoreReads`` is mixed into both recorders (pg_recorder.py, sqlite_recorder.py), so the
application asks its recorder (application/ports.py) and names no SQL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

CHUNK = 500  # ids per query (SQLite allows 999 parameters)
PAIR_CHUNK = 400  # (id, version) pairs per query


def _fetch(recorder: Any, postgres: str, postgres_params: Sequence[Any],
           sqlite: str, sqlite_params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Runs the query written for the store in use; ``{table}`` names the events table."""
    from eventsourcing.postgres import PostgresApplicationRecorder

    if isinstance(recorder, PostgresApplicationRecorder):
        from psycopg.sql import SQL, Identifier

        statement = SQL(postgres).format(
            table=Identifier(recorder.datastore.schema, recorder.events_table_name))
        with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, postgres_params)
            return [tuple(row.values()) for row in curs.fetchall()]
    with recorder.datastore.transaction(commit=False) as curs:
        curs.execute(sqlite.format(table=recorder.events_table_name), sqlite_params)
        return [tuple(row) for row in curs.fetchall()]


# LATERAL (kept apart by OFFSET 0, which the planner does not flatten into a join): an
# index lookup per id, whatever the planner's statistics say. As a join, on a log it had no
# statistics for yet, it scanned the whole log for every batch, so a batch cost more the
# longer the log.
EVENTS_AFTER_POSTGRES = (
    "SELECT t.originator_id, t.originator_version, t.topic, t.state "
    "FROM unnest(%b::uuid[], %b::bigint[]) AS k(id, v) CROSS JOIN LATERAL "
    "(SELECT * FROM {table} WHERE originator_id = k.id AND originator_version > k.v "
    "OFFSET 0) t ORDER BY t.originator_id, t.originator_version")
CURRENT_VERSIONS_POSTGRES = (
    "SELECT k.id, (SELECT MAX(originator_version) FROM {table} "
    "WHERE originator_id = k.id) FROM unnest(%b::uuid[]) AS k(id)")
FIRST_POSITIONS_POSTGRES = (
    "SELECT k.id, (SELECT notification_id FROM {table} WHERE originator_id = k.id "
    "AND originator_version = 1) FROM unnest(%b::uuid[]) AS k(id)")


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


class StoreReads:
    """Many aggregates' events, versions and first log positions, a query per chunk."""

    def events_after(self, since: Mapping[UUID, int]) -> dict[UUID, list[StoredEvent]]:
        return events_after(self, since)

    def current_versions(self, ids: Sequence[UUID]) -> dict[UUID, int]:
        return current_versions(self, ids)

    def first_positions(self, ids: Sequence[UUID]) -> dict[UUID, int]:
        return first_positions(self, ids)


def events_after(recorder: Any, since: Mapping[UUID, int]) -> dict[UUID, list[StoredEvent]]:
    """Each aggregate's stored events after the version given for it (0: all of them),
    oldest first; ids with no such events have no entry."""
    pairs = list(since.items())
    rows: list[Any] = []
    for start in range(0, len(pairs), PAIR_CHUNK):
        chunk = pairs[start:start + PAIR_CHUNK]
        keys = ",".join("(?, ?)" for _ in chunk)
        rows += _fetch(
            recorder,
            EVENTS_AFTER_POSTGRES,
            ([i for i, _ in chunk], [v for _, v in chunk]),
            f"WITH k(id, v) AS (VALUES {keys}) "
            "SELECT originator_id, originator_version, topic, state FROM {table} AS t "
            "JOIN k ON t.originator_id = k.id AND t.originator_version > k.v "
            "ORDER BY originator_id, originator_version",
            [x for i, v in chunk for x in (i.hex, v)])
    events: dict[UUID, list[StoredEvent]] = defaultdict(list)
    for originator_id, version, topic, state in rows:
        stored = StoredEvent(originator_id=_uuid(originator_id), originator_version=version,
                             topic=topic, state=bytes(state))
        events[stored.originator_id].append(stored)
    return events


def _per_id(recorder: Any, ids: Sequence[UUID], postgres: str, sqlite: str
            ) -> list[tuple[UUID, Any]]:
    """(id, value) rows of a query over many ids, a chunk at a time: ``postgres`` takes the
    chunk as one uuid[] parameter, ``sqlite`` has ``{marks}`` where its placeholders go."""
    rows: list[Any] = []
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start:start + CHUNK])
        rows += _fetch(recorder, postgres, (chunk,),
                       sqlite.replace("{marks}", ",".join("?" * len(chunk))),
                       [i.hex for i in chunk])
    return [(_uuid(i), value) for i, value in rows]


def current_versions(recorder: Any, ids: Sequence[UUID]) -> dict[UUID, int]:
    """The latest version of each aggregate among ``ids`` that exists."""
    rows = _per_id(recorder, ids, CURRENT_VERSIONS_POSTGRES,
                   "SELECT originator_id, MAX(originator_version) FROM {table} "
                   "WHERE originator_id IN ({marks}) GROUP BY originator_id")
    # An id with no events is a NULL version on PostgreSQL, no row on SQLite.
    return {i: int(v) for i, v in rows if v is not None}


def first_positions(recorder: Any, ids: Sequence[UUID]) -> dict[UUID, int]:
    """The log position of each aggregate's first event, for those among ``ids`` that exist
    (an idempotency record has only that one)."""
    rows = _per_id(recorder, ids, FIRST_POSITIONS_POSTGRES,
                   "SELECT originator_id, rowid FROM {table} "
                   "WHERE originator_id IN ({marks}) AND originator_version = 1")
    return {i: int(p) for i, p in rows if p is not None}
