"""The SQLite event recorder, with the audit trees written beside the log.

SQLite has one writer at a time (the file's write lock, held by the library's transaction),
so the tree rows appended in the same transaction as the events see every earlier append.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore

from ledger.adapters.audit_store import SQLITE_DDL, TreeAppender
from ledger.adapters.store_reads import StoreReads


class LedgerSQLiteRecorder(StoreReads, SQLiteApplicationRecorder):
    def __init__(self, datastore: SQLiteDatastore,
                 events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name)
        self.trees = TreeAppender(postgres=False)

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *SQLITE_DDL]

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent],
                       **kwargs: Any) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        assert ids is not None
        self.trees.append(c, kwargs["platforms"], ids, stored_events)
        return ids
