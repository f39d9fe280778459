"""A batch's working set of aggregates, over a cache that saves the store a round trip per
aggregate.

Group commit runs many commands one after another and saves all their events in one
transaction; a refused command must leave no trace, even when an earlier command in the same
batch changed the same aggregate. No aggregate (each kind is ``Decided``) is changed while a
command decides: the command reads them as they stand, shared, without a copy of its own,
and hands the events it decided to ``record``; only when it succeeds are they applied, to
the batch's own copy of the aggregate (made once per batch, on its first change: the
cache's objects never change, as they may be an answer still being sent, or needed again
should the batch be decided again). A refused command has recorded nothing, so there is
nothing to undo.

Aggregates come from, in order: this command's, the batch's, the writer's cache, the store.
The cache holds each aggregate as this writer last saved or loaded it (or that it does not
exist). Another server may have written since, so what a batch took from the cache without
loading it afresh is checked against the store's versions, in one query, before the batch
is saved; a stale entry is dropped and the batch decided again.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Repository, project_aggregate
from eventsourcing.domain import Aggregate

from ledger.domain.decisions import Decided, Event, evolve_all
from ledger.domain.errors import NotFound

A = TypeVar("A", bound=Aggregate)
MISSING = object()


class AggregateCache:
    """Bounded (least recently used out first); ``None`` records that an id does not exist."""

    def __init__(self, maxsize: int = 100_000) -> None:
        assert maxsize >= 1
        self.maxsize = maxsize
        self._entries: OrderedDict[UUID, Aggregate | None] = OrderedDict()

    def lookup(self, aggregate_id: UUID) -> Any:
        """The entry, or MISSING when nothing is known."""
        entry = self._entries.get(aggregate_id, MISSING)
        if entry is not MISSING:
            self._entries.move_to_end(aggregate_id)
        return entry

    def put(self, aggregate_id: UUID, aggregate: Aggregate | None) -> None:
        self._entries[aggregate_id] = aggregate
        self._entries.move_to_end(aggregate_id)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)

    def evict(self, ids: Iterable[UUID]) -> None:
        for aggregate_id in ids:
            self._entries.pop(aggregate_id, None)


class UnitOfWork:
    def __init__(self, repository: Repository[UUID], cache: AggregateCache | None = None
                 ) -> None:
        self._repository = repository
        self._cache = cache or AggregateCache()
        self._staged: dict[UUID, Aggregate] = {}  # as the batch's committed commands left them
        self._owned: set[UUID] = set()  # staged objects the batch alone holds: changed in place
        self._added: dict[UUID, Aggregate] = {}  # this command's new aggregates
        self._decided: dict[UUID, tuple[Aggregate, list[Event]]] = {}  # this command's events
        self._looked_at: dict[UUID, None] = {}  # what this command found or added, in order
        self._fresh: set[UUID] = set()  # loaded from the store during this batch
        self._trusted: dict[UUID, int | None] = {}  # taken from the cache: version seen
        self._kept: dict[UUID, int] = {}  # read, and relied on until the commit: version

    def prefetch(self, ids: Sequence[UUID],
                 events_after: Callable[[Mapping[UUID, int]], Mapping[UUID, list[Any]]]
                 ) -> None:
        """Brings what the batch's commands look up first up to date, in one round trip.

        A cached aggregate only needs the events written since the version cached (usually
        none: decoding its whole history every batch was a sixth of the writer's time); the
        rest are read from their first event."""
        wanted = [i for i in dict.fromkeys(ids) if i not in self._fresh]
        known = {i: self._cache.lookup(i) for i in wanted}
        newer = events_after({i: e.version if isinstance(e, Aggregate) else 0
                              for i, e in known.items()})
        for aggregate_id in wanted:
            entry = known[aggregate_id]
            aggregate = entry if isinstance(entry, Aggregate) else None
            events = newer.get(aggregate_id)
            if events:
                # The cached object may be an answer still being sent: change a copy.
                aggregate = project_aggregate(
                    copy.deepcopy(aggregate) if aggregate is not None else None, events)
            self._cache.put(aggregate_id, aggregate)
            self._fresh.add(aggregate_id)

    def find(self, cls: type[A], aggregate_id: UUID) -> A | None:
        """The aggregate as this command sees it, or None if it was never created: as the
        batch's earlier commands left it, without what this command has decided (a command
        decides on what stands). It is shared: change it only by ``record``."""
        found = self._added.get(aggregate_id)
        if found is None:
            found = self._staged.get(aggregate_id)
            if found is None:
                found = self._cached(aggregate_id)
                if found is None:
                    return None
        assert isinstance(found, cls), f"{aggregate_id} is a {type(found).__name__}"
        assert isinstance(found, Decided), f"{cls.__name__} is not changed by decided events"
        self._looked_at[aggregate_id] = None
        return found

    def _cached(self, aggregate_id: UUID) -> Aggregate | None:
        entry = self._cache.lookup(aggregate_id)
        if entry is MISSING:
            try:
                entry = self._repository.get(aggregate_id)
            except AggregateNotFoundError:
                entry = None
            self._cache.put(aggregate_id, entry)
            self._fresh.add(aggregate_id)
        elif aggregate_id not in self._fresh:
            self._trusted[aggregate_id] = entry.version if entry is not None else None
        return entry  # type: ignore[no-any-return]

    def get(self, cls: type[A], aggregate_id: UUID, what: str) -> A:
        found = self.find(cls, aggregate_id)
        if found is None:
            raise NotFound(f"{what} does not exist")
        return found

    def add(self, aggregate: Aggregate) -> None:
        """A new aggregate, this command's own until it commits (changed by ``record``)."""
        self._added[aggregate.id] = aggregate
        self._looked_at[aggregate.id] = None

    def record(self, aggregate: Aggregate, events: Sequence[Event]) -> None:
        """Keeps what the command decided for ``aggregate``, to apply when it commits; on a
        new aggregate of this command's, applies it now (no one else sees it)."""
        if aggregate.id in self._added:
            evolve_all(aggregate, events)
        elif events:
            self._looked_at.setdefault(aggregate.id, None)
            self._decided.setdefault(aggregate.id, (aggregate, []))[1].extend(events)

    def version(self, aggregate: Aggregate) -> int:
        """The version ``aggregate`` is at once this command's decided events are applied."""
        decided = self._decided.get(aggregate.id)
        return aggregate.version + (len(decided[1]) if decided is not None else 0)

    def commit_command(self) -> tuple[tuple[UUID, int], ...]:
        """Keeps what the command changed; returns what it wrote: each aggregate it added
        events to, at the version they brought it to. The batch's aggregates are saved in
        the order each was first looked at, as the command looked at them."""
        written: list[UUID] = []
        for aggregate_id in self._looked_at:
            if aggregate_id in self._added:
                self._staged[aggregate_id] = self._added[aggregate_id]
                self._owned.add(aggregate_id)
                written.append(aggregate_id)
            elif aggregate_id in self._decided:
                aggregate, events = self._decided[aggregate_id]
                evolve_all(self._writable(aggregate), events)
                written.append(aggregate_id)
        self.rollback_command()
        return tuple((i, self._staged[i].version) for i in written)

    def _writable(self, aggregate: Aggregate) -> Aggregate:
        """The batch's own copy of ``aggregate``, made on its first change in the batch."""
        if aggregate.id in self._owned:
            return self._staged[aggregate.id]
        own = copy.deepcopy(self._staged.get(aggregate.id, aggregate))
        self._staged[aggregate.id] = own
        self._owned.add(aggregate.id)
        return own

    def rollback_command(self) -> None:
        self._looked_at.clear()
        self._added.clear()
        self._decided.clear()

    def stale(self, current_versions: Callable[[Sequence[UUID]], dict[UUID, int]]
              ) -> list[UUID]:
        """What the batch took from the cache that the store has since moved past."""
        if not self._trusted:
            return []
        now = current_versions(list(self._trusted))
        return [i for i, seen in self._trusted.items() if now.get(i) != seen]

    def keep_unchanged(self, aggregate: Aggregate) -> None:
        """The batch commits only if ``aggregate`` is still at the version read then: for a
        read a command's decision rests on that another server may change meanwhile. The
        store checks it under its insert lock (pg_recorder.py), after ``stale``'s check,
        which runs before the lock and so leaves a moment in between."""
        self._kept.setdefault(aggregate.id, aggregate.version)

    def kept_unchanged(self) -> dict[UUID, int]:
        """What must be unchanged at the commit, but for what the batch changes itself (its
        new events' versions make the same check)."""
        return {i: v for i, v in self._kept.items()
                if i not in self._staged or not self._staged[i].pending_events}

    def answer(self, aggregate_id: UUID) -> Aggregate | None:
        """A committed command's aggregate, to answer it with: it is sent after the batch,
        so no later command of the batch changes it in place (they change a copy)."""
        self._owned.discard(aggregate_id)
        return self._staged.get(aggregate_id)

    def staged(self) -> list[Aggregate]:
        return list(self._staged.values())

    def involved(self) -> set[UUID]:
        return {*self._staged, *self._trusted, *self._fresh}

    def remember_saved(self, skip: tuple[type, ...] = ()) -> None:
        """After the batch's transaction committed, the cache holds what it wrote (but for
        kinds of aggregate that are rarely read again, which would only take memory)."""
        for aggregate in self._staged.values():
            if isinstance(aggregate, skip):
                self._cache.evict([aggregate.id])
            else:
                self._cache.put(aggregate.id, aggregate)
