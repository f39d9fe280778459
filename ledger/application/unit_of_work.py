"""A batch's working set of aggregates, with per-command rollback.

Group commit runs many commands one after another and saves all their events in one
transaction. Each command works on copies of the aggregates it touches; only when it
succeeds do its copies replace the batch's, so a refused command leaves no trace even when an
earlier command in the same batch changed the same aggregate.
"""

from __future__ import annotations

import copy
from typing import TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Repository
from eventsourcing.domain import Aggregate

from ledger.domain.errors import NotFound

A = TypeVar("A", bound=Aggregate)


class UnitOfWork:
    def __init__(self, repository: Repository[UUID]) -> None:
        self._repository = repository
        self._staged: dict[UUID, Aggregate] = {}
        self._touched: dict[UUID, Aggregate] = {}

    def find(self, cls: type[A], aggregate_id: UUID) -> A | None:
        """The aggregate as this command sees it, or None if it was never created."""
        if aggregate_id in self._touched:
            found: Aggregate = self._touched[aggregate_id]
        elif aggregate_id in self._staged:
            found = copy.deepcopy(self._staged[aggregate_id])
        else:
            try:
                found = self._repository.get(aggregate_id)
            except AggregateNotFoundError:
                return None
        assert isinstance(found, cls), f"{aggregate_id} is a {type(found).__name__}"
        self._touched[aggregate_id] = found
        return found

    def get(self, cls: type[A], aggregate_id: UUID, what: str) -> A:
        found = self.find(cls, aggregate_id)
        if found is None:
            raise NotFound(f"{what} does not exist")
        return found

    def add(self, aggregate: Aggregate) -> None:
        self._touched[aggregate.id] = aggregate

    def commit_command(self) -> None:
        self._staged.update(self._touched)
        self._touched.clear()

    def rollback_command(self) -> None:
        self._touched.clear()

    def staged_aggregate(self, aggregate_id: UUID) -> Aggregate | None:
        """A committed command's aggregate; later commands work on copies, never on it."""
        return self._staged.get(aggregate_id)

    def staged(self) -> list[Aggregate]:
        return list(self._staged.values())
