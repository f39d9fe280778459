"""Decisions apart from the aggregates that record them: ``decide`` then ``evolve``.

Every command is decided by a pure function of the state it reads, ``decide_…(state,
command) -> events``: it checks every rule, raises the domain's error on a refusal, and
changes nothing. ``evolve(aggregate, event)`` then applies a decided event to the aggregate,
which stays the eventsourcing library's container that the store saves: it runs the event's
``@event`` method, whose body only applies what was decided and cannot fail. Because
deciding changes nothing, a refused command leaves nothing to undo, and the writer need not
copy an aggregate before a command looks at it (application/unit_of_work.py).

A decided event is a frozen dataclass whose fields are the stored event's, field for field,
and whose ``method`` names the aggregate's ``@event`` method that records it: ``Paid``
decided is ``Order.Paid`` recorded, so logs written before read back unchanged. An
aggregate's first event (``Placed``, ``Enrolled``…) is its constructor's: ``create``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")


class Decided:
    """Mixed into an aggregate whose every change is decided first and recorded by
    ``evolve``: nothing changes it while a command decides, so a command may read it
    without a copy of its own."""


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """A decided event, not yet recorded. ``method``: the aggregate's ``@event`` method
    that records it (for a first event: none, the constructor records it)."""

    method: ClassVar[str] = ""

    def values(self) -> dict[str, Any]:
        """The stored event's fields, by name."""
        return {name: getattr(self, name) for name in _field_names(type(self))}


_FIELDS: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def evolve(aggregate: T, event: Event) -> T:
    """Applies a decided event to the aggregate (recording it there, for the store to save).
    It cannot be refused: every rule was checked when it was decided."""
    assert event.method, f"{type(event).__name__} is a first event: create() records it"
    getattr(aggregate, event.method)(**event.values())
    return aggregate


def evolve_all(aggregate: T, events: Iterable[Event]) -> T:
    for event in events:
        evolve(aggregate, event)
    return aggregate


def create(cls: type[T], first: Event, *then: Event) -> T:
    """A new aggregate from its first event (its constructor's), and the events after."""
    assert not first.method, f"{type(first).__name__} is not a first event"
    return evolve_all(cls(**first.values()), then)
