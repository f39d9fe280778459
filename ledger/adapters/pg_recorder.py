"""The PostgreSQL event recorder, with a cheaper insert.

The eventsourcing library inserts a batch as one array of a composite row type. psycopg
dumps such an array as text, element by element, in Python: on the bulk-import path that
was a seventh of the server's CPU. This recorder sends the same rows as four plain typed
arrays in binary (uuid[], bigint[], text[], bytea[]), which psycopg dumps in C, and keeps
everything else of the library's recorder: its table, its table lock (so notification ids
are assigned in commit order), its NOTIFY and its ``RETURNING notification_id``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import RecordConflictError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from ledger import failpoints
from ledger.adapters import idempotency_keys as keys_table
from ledger.adapters.audit_store import POSTGRES_DDL, TreeAppender
from ledger.adapters.store_reads import CURRENT_VERSIONS_POSTGRES, StoreReads
from ledger.application.idempotency import Key, KeyRecord, NewKey


class LedgerPostgresRecorder(StoreReads, PostgresApplicationRecorder):
    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.insert_events_statement = SQL(
            "INSERT INTO {}.{} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(Identifier(datastore.schema), Identifier(events_table_name))
        self.current_versions_statement = SQL(CURRENT_VERSIONS_POSTGRES).format(
            table=Identifier(datastore.schema, events_table_name))
        self.lock_statement = SQL("SELECT pg_advisory_xact_lock(hashtext({}))").format(
            f"ledger-log:{datastore.schema}.{events_table_name}")
        self.trees = TreeAppender(postgres=True, schema=datastore.schema)
        self.keys_sql = SQL("{}.{}").format(Identifier(datastore.schema),
                                              Identifier(keys_table.TABLE))
        self.head_statement = SQL("SELECT COALESCE(MAX(notification_id), 0) FROM {}.{}"
                                  ).format(Identifier(datastore.schema),
                                           Identifier(events_table_name))

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], *,
        unchanged: Mapping[UUID, int] | None = None, **_: Any
    ) -> None:
        self._lock_log(curs)
        self._notify_channel(curs)
        if unchanged:
            self._check_unchanged(curs, unchanged)
        curs.execute(
            self.insert_events_statement,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
        )

    def _lock_log(self, curs: Cursor[DictRow]) -> None:
        """Serialises the transactions that append to the log, so that positions become
        visible in commit order (a reader never passes a position that commits later) and
        each platform's tree is extended by one writer at a time.

        A transaction-level advisory lock, where the library takes LOCK TABLE … EXCLUSIVE:
        that needs UPDATE or DELETE rights on the log, which the service's role must not
        have (the log is append-only). Every writer of the log is this recorder, so all of
        them take it; readers take nothing and are never blocked."""
        curs.execute(self.lock_statement, prepare=True)

    def create_table(self) -> None:
        """The library's events table, then the audit trees' and the keys' tables."""
        super().create_table()
        with self.datastore.transaction(commit=True) as curs:
            for statement in (*POSTGRES_DDL, *keys_table.POSTGRES_DDL):
                curs.execute(statement.format(schema=Identifier(self.datastore.schema)
                                              .as_string(curs)))

    def _check_unchanged(self, curs: Cursor[DictRow], unchanged: Mapping[UUID, int]) -> None:
        """Under the table lock nothing else commits: an aggregate still at the version the
        batch read stays so until this transaction ends (see UnitOfWork.keep_unchanged)."""
        with curs.connection.cursor() as check:
            check.execute(self.current_versions_statement, (list(unchanged),))
            now = dict(tuple(row.values()) for row in check.fetchall())
        moved = [i for i, version in unchanged.items() if now.get(i) != version]
        if moved:
            raise RecordConflictError(f"changed since the batch read them: {moved}")

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        assert ids is not None
        self.trees.append(curs, kwargs["platforms"], ids, stored_events)
        self._write_keys(curs, kwargs.get("keys", ()), max(ids), {
            (e.originator_id, e.originator_version): i
            for e, i in zip(stored_events, ids, strict=True)})
        failpoints.inside_commit()  # a crash test's way in: inserted, not committed
        return ids

    def _insert_events(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent],
                       **kwargs: Any) -> None:
        """First in the batch's transaction: a batch that wrote no events still records its
        keys, at the log's head, under the log's lock."""
        keys = kwargs.get("keys", ())
        if keys and not stored_events:
            self._lock_log(curs)
            curs.execute(self.head_statement)
            row = curs.fetchone()
            assert row is not None
            self._write_keys(curs, keys, int(next(iter(row.values()))), {})

    def _write_keys(self, curs: Cursor[DictRow], keys: Sequence[NewKey], head: int,
                    written: dict[tuple[UUID, int], int]) -> None:
        if keys:
            keys_table.positions_of(keys, written, head)
            curs.executemany(SQL(keys_table.insert_sql("{}", "%s")).format(self.keys_sql),
                             keys_table.rows(keys))

    def recorded_keys(self, keys: Sequence[Key]) -> dict[Key, KeyRecord]:
        out: dict[Key, KeyRecord] = {}
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(SQL(keys_table.SELECT_POSTGRES).format(self.keys_sql),
                         [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]])
            out.update(keys_table.found(tuple(r.values()) for r in curs.fetchall()))
        return out
