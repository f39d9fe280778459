"""The ledger application: runs batches of commands and answers reads from the event store.

All writes go through ``run_batch``: each command is checked, run against a shared unit of
work, and the whole batch's events (with the idempotency keys they answer, in a table
beside the log) are saved in one transaction. That is what lets many concurrent requests
share one commit (see group_commit.py); a single request is simply a batch of one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    RecordConflictError,
    Recording,
)

from ledger import failpoints, metrics
from ledger.application import commands as c
from ledger.application.context import Context, own_order, plan_book, tax_book
from ledger.application.handlers import HANDLERS, key_lookups, prefetch_ids
from ledger.application.idempotency import (
    IdempotencyRecord,
    Key,
    KeyBook,
    KeyRecord,
    NewKey,
    ResultRef,
    check_same_request,
)
from ledger.application.ports import IdempotencyKeys, StoreReads
from ledger.application.unit_of_work import AggregateCache, UnitOfWork
from ledger.domain.errors import Conflict, NotFound, check
from ledger.domain.order import Order
from ledger.domain.plan import CommissionPlan
from ledger.domain.tax_table import TaxTable
from ledger.domain.team import CustomerBinding, Reseller

log = structlog.get_logger(__name__)

# A batch of one that keeps meeting another server's concurrent write gives up after this
# many attempts and tells the client to retry (ABORTED).
MAX_CONFLICT_ATTEMPTS = 3


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outcome:
    """The answer to one write: where it lives, whether it replays an earlier request, and
    its receipt's log position (that of the last event it wrote, or of the log's head for a
    write that wrote none: a replay has the first answer's)."""

    ref: ResultRef
    replayed: bool
    log_position: int
    # The answering aggregate as the command left it, when this write made it (a replay
    # leaves it None: the first answer is rebuilt from the store at ``ref.version``).
    answer: Any = field(default=None, compare=False, repr=False)


class LedgerApplication(Application[UUID]):
    name = "Ledger"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        clock: Callable[[], datetime] = utc_now,
        timezone: str = "Asia/Shanghai",
        cache_size: int = 20_000,
    ) -> None:
        super().__init__(env)
        self.clock = clock
        self.timezone = timezone
        # Used by the writer (the thread that runs batches) only.
        self.cache = AggregateCache(cache_size)

    # --- writes --------------------------------------------------------------------------

    def run_batch(
        self, items: Sequence[tuple[c.Caller, c.Command]]
    ) -> list[Outcome | BaseException]:
        """Runs the commands in order and commits all their events in one transaction.

        A refused command leaves no trace; the others still commit. If the transaction meets
        a concurrent write from another server, each command is run again on its own.
        """
        for attempt in range(1, MAX_CONFLICT_ATTEMPTS + 1):
            uow = UnitOfWork(self.repository, self.cache)
            uow.prefetch([i for caller, command in items for i in prefetch_ids(caller, command)],
                         self._events_after)
            keys = KeyBook(self.idempotency_keys.recorded_keys,
                           lambda key, uow=uow: self._logged_key(uow, key))
            keys.prefetch([k for caller, command in items for k in key_lookups(caller, command)])
            decided: list[tuple[Key, ResultRef, bool, Any] | BaseException] = []
            for caller, command in items:
                try:
                    key, result, fingerprint, replayed = self._decide(uow, keys, caller,
                                                                      command)
                    writes = uow.commit_command()
                    if not replayed:
                        keys.add(NewKey(*key, fingerprint, result, writes))
                    answer = None if replayed else uow.answer(result.aggregate_id)
                    decided.append((key, result, replayed, answer))
                except Exception as error:  # each command fails alone, whatever the cause
                    # Not logged here: whoever waits for it does, once (a call's line).
                    uow.rollback_command()
                    decided.append(error)
            stale = uow.stale(self.store_reads.current_versions)
            if stale:
                self.cache.evict(stale)
                log.info("cached aggregates changed by another writer; deciding again",
                         stale=len(stale), attempt=attempt)
                continue
            try:
                with failpoints.committing(command for _, command in items):
                    self.save_staged(uow.staged(), uow.kept_unchanged(),
                                     list(keys.new.values()))
            except RecordConflictError:
                self.cache.evict(uow.involved())
                if len(items) > 1:
                    return [result for item in items for result in self.run_batch([item])]
                log.info("concurrent write, retrying", attempt=attempt)
                continue
            uow.remember_saved(skip=(IdempotencyRecord,))
            return [
                d if isinstance(d, BaseException)
                else Outcome(d[1], d[2], keys.position(d[0]), d[3])
                for d in decided
            ]
        return [Conflict("another write changed the same records at the same time; retry")
                for _ in items]

    @property
    def store_reads(self) -> StoreReads:
        """The recorder, with the reads of many aggregates at once that the ledger's
        recorders add (adapters/store_reads.py)."""
        recorder: StoreReads = self.recorder  # type: ignore[assignment]
        return recorder

    @property
    def idempotency_keys(self) -> IdempotencyKeys:
        """The recorder, with the keys' table the ledger's recorders keep beside the log
        (adapters/idempotency_keys.py)."""
        recorder: IdempotencyKeys = self.recorder  # type: ignore[assignment]
        return recorder

    def _events_after(self, since: Mapping[UUID, int]) -> dict[UUID, list[Any]]:
        to_domain = self.mapper.to_domain_event
        return {i: [to_domain(s) for s in stored]
                for i, stored in self.store_reads.events_after(since).items()}

    def save_staged(self, aggregates: Sequence[Any], unchanged: Mapping[UUID, int] | None = None,
                    keys: Sequence[NewKey] = ()) -> list[Recording[UUID]]:
        """Puts the aggregates' new events in the event store in one transaction, with the
        keys they answer (``keys``: the recorder writes them after the events and sets each
        one's position), if the aggregates in ``unchanged`` are still at those versions
        (PostgreSQL checks it under its insert lock; else RecordConflictError).

        Application.save() would do the same after checking every object against runtime
        Protocols, a few percent of the writer's time for nothing (all are our aggregates)."""
        events: list[Any] = []
        platforms: list[str] = []  # each event's platform, for its audit tree
        for aggregate in aggregates:
            new = aggregate.collect_events()
            events += new
            platforms += [aggregate.platform_id] * len(new)
        recordings = self.events.put(events, unchanged=unchanged or {}, platforms=platforms,
                                     keys=keys)
        metrics.EVENTS_APPENDED.inc(len(events))
        return recordings

    def _logged_key(self, uow: UnitOfWork, key: Key) -> KeyRecord | None:
        """A key recorded in the log, as the code before the keys' table did (see
        idempotency.py): its receipt is its record's position."""
        record_id = IdempotencyRecord.create_id(*key)
        record = uow.find(IdempotencyRecord, record_id)
        if record is None:
            return None
        position = self.store_reads.first_positions([record_id])[record_id]
        return KeyRecord(record.fingerprint, record.result, position)

    def _decide(self, uow: UnitOfWork, keys: KeyBook, caller: c.Caller, command: c.Command
                ) -> tuple[Key, ResultRef, str, bool]:
        """Runs one command, or replays the answer recorded for its idempotency key; returns
        the key, the answer, the request's fingerprint and whether it is a replay. A write's
        receipt is its key's position: its last event's (see idempotency.py)."""
        check(command.violations())
        key = (caller.platform_id, caller.principal, command.idempotency_key)
        fingerprint = command.fingerprint()
        earlier = keys.find(key)
        if earlier is not None:
            check_same_request(command.idempotency_key, earlier.fingerprint, fingerprint)
            return key, earlier.result, fingerprint, True
        context = Context(uow, caller, self.clock(), self.timezone, keys=keys)
        return key, HANDLERS[type(command)](context, command), fingerprint, False

    def check_connections(self) -> None:
        """Checks every idle connection in the event store's pool, replacing the dead ones.

        After a database restart, a failover or a terminated backend, every pooled
        connection is dead, and each write or read would meet one of them in turn and fail
        (the pool's own check on lending, POSTGRES_PRE_PING, waits a second or more after
        each dead one). Whoever meets the first dead connection calls this, and the health
        probe calls it every second, so the pool is whole again at once. Nothing to do on
        SQLite, which has no pool."""
        pool = getattr(getattr(self.recorder, "datastore", None), "pool", None)
        if pool is not None and hasattr(pool, "check"):
            with suppress(Exception):  # a database still away: the next use will say so
                pool.check()

    # --- reads ---------------------------------------------------------------------------

    def log_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def answer(self, result: ResultRef) -> Any:
        """The aggregate as it stood right after the write that produced ``result``."""
        return self.repository.get(result.aggregate_id, version=result.version)

    def order(self, caller: c.Caller, order_id: str) -> Order:
        return own_order(UnitOfWork(self.repository), caller, order_id)

    def reseller(self, platform_id: str, reseller_id: str) -> Reseller:
        return self._get(Reseller.create_id(platform_id, reseller_id), f"reseller {reseller_id}")

    def binding(self, platform_id: str, customer_id: str) -> CustomerBinding:
        return self._get(
            CustomerBinding.create_id(platform_id, customer_id), f"customer {customer_id}"
        )

    def plan(
        self, platform_id: str, *, version: int = 0, at: datetime | None = None
    ) -> CommissionPlan:
        """A plan by version, or the one in force at a time (now by default)."""
        book = plan_book(UnitOfWork(self.repository), platform_id)
        if version:
            return book.plan_version(version)
        return book.in_force_at(at or self.clock())

    def tax_table(self, platform_id: str, *, version: int = 0,
                  at: datetime | None = None) -> TaxTable:
        """A tax table by version, or the one in force at a time (now by default)."""
        book = tax_book(UnitOfWork(self.repository), platform_id)
        if version:
            return book.table_version(version)
        return book.in_force_at(at or self.clock())

    def find(self, aggregate_id: UUID) -> Any:
        """The aggregate, or None if it was never created."""
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def _get(self, aggregate_id: UUID, what: str) -> Any:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(f"{what} does not exist") from None
