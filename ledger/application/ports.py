"""What the application asks of the store beyond the eventsourcing library's recorder.

The application names no SQL and no adapter: the store it is given (by ``PERSISTENCE_MODULE``
and ``APPLICATION_RECORDER_TOPIC``, see config.event_store_env) provides these, and
ledger/adapters/store_reads.py is how both of the ledger's recorders do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from ledger.application.idempotency import Key, KeyRecord
from ledger.audit.entries import StoredEntry


class StoreReads(Protocol):
    def events_after(self, since: Mapping[UUID, int]) -> dict[UUID, list[StoredEvent]]:
        """Each aggregate's stored events after the version given (0: all), oldest first."""

    def current_versions(self, ids: Sequence[UUID]) -> dict[UUID, int]:
        """The latest version of each aggregate among ``ids`` that exists."""

    def first_positions(self, ids: Sequence[UUID]) -> dict[UUID, int]:
        """The log position of the first event of each aggregate among ``ids``."""


class AuditRecords(Protocol):
    """The audit tables of the store (adapters/audit_store.py ``AuditLog``): the trees the
    recorders append with the log, the signed heads and the signing keys."""

    def platforms(self) -> list[str]: ...

    def tree_size(self, platform: str, position: int | None = None) -> int: ...

    def root(self, platform: str, size: int) -> bytes: ...

    def compute(self, platform: str, compute: Any) -> Any: ...

    def entries(self, platform: str, from_seq: int, limit: int) -> list[StoredEntry]: ...

    def entries_with_events(self, platform: str, from_seq: int, limit: int
                            ) -> list[tuple[Any, ...]]: ...

    def events_outside_trees(self, limit: int = 10) -> list[tuple[int, str]]: ...

    def heads(self, platform: str) -> list[tuple[Any, ...]]: ...

    def add_head(self, platform: str, tree_size: int, root: bytes, signed_at: int,
                 key_id: str, signature: bytes, reason: str) -> None: ...

    def keys(self) -> dict[str, bytes]: ...

    def add_key(self, key_id: str, public_key: bytes) -> None: ...


class IdempotencyKeys(Protocol):
    """The keys' table (adapters/idempotency_keys.py): read by a batch before it decides;
    written by the recorder in the batch's transaction, from ``keys=`` passed to the event
    store's ``put``."""

    def recorded_keys(self, keys: Sequence[Key]) -> dict[Key, KeyRecord]: ...
