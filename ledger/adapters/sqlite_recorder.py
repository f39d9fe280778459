"""The SQLite event recorder, with the audit trees written beside the log.

SQLite has one writer at a time (the file's write lock, held by the library's transaction),
so the tree rows appended in the same transaction as the events see every earlier append.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore

from ledger.adapters import idempotency_keys as keys_table
from ledger.adapters.audit_store import SQLITE_DDL, TreeAppender
from ledger.adapters.store_reads import StoreReads
from ledger.application.idempotency import Key, KeyRecord, NewKey


class LedgerSQLiteRecorder(StoreReads, SQLiteApplicationRecorder):
    def __init__(self, datastore: SQLiteDatastore,
                 events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name)
        self.trees = TreeAppender(postgres=False)

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *SQLITE_DDL,
                *keys_table.SQLITE_DDL]

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent],
                       **kwargs: Any) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        assert ids is not None
        self.trees.append(c, kwargs["platforms"], ids, stored_events)
        keys: Sequence[NewKey] = kwargs.get("keys", ())
        if keys and ids:
            # SQLite has one writer at a time (this transaction's): the head is this
            # batch's last event.
            keys_table.positions_of(keys, {(e.originator_id, e.originator_version): i
                                           for e, i in zip(stored_events, ids, strict=True)},
                                    ids[-1])
            c.executemany(keys_table.insert_sql(keys_table.TABLE, "?"), keys_table.rows(keys))
        elif keys:
            # No events: the keys are written first, at the log's head read by the insert
            # itself. Reading the head first would take a shared lock that SQLite cannot
            # raise to a write lock while another connection (the read models') writes: it
            # answers "database is locked" at once, without waiting.
            head = keys_table.head_sql(self.events_table_name)
            c.executemany(keys_table.insert_sql(keys_table.TABLE, "?", f"({head})"),
                          keys_table.rows(keys, positions=False))
            c.execute(head)  # this transaction now holds the write lock
            position = int(c.fetchone()[0])
            for new in keys:
                new.position = position
        return ids

    def recorded_keys(self, keys: Sequence[Key]) -> dict[Key, KeyRecord]:
        out: dict[Key, KeyRecord] = {}
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(keys), keys_table.CHUNK):
                chunk = keys[start:start + keys_table.CHUNK]
                c.execute(keys_table.select_sql(keys_table.TABLE, "?", len(chunk)),
                          [x for k in chunk for x in k])
                out.update(keys_table.found(c.fetchall()))
        return out
