"""Versioned, effective-dated rules (commission plans, tax tables): which version is in force
at a moment, and when a new version may take effect."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from ledger.domain.errors import InvalidInput, RuleViolation


class Dated(Protocol):
    @property
    def version(self) -> int: ...

    @property
    def effective_from(self) -> datetime: ...


V = TypeVar("V", bound=Dated)


class Versioned(Dated, Protocol):
    def with_version(self, version: int, effective_from: datetime) -> Versioned: ...


W = TypeVar("W", bound=Versioned)


def in_force_at(versions: Sequence[V], at: datetime) -> V:
    """The last version in effect at ``at`` (the first, in force from the beginning of
    time, when none is)."""
    chosen = versions[0]
    for version in versions:
        if version.effective_from <= at:
            chosen = version
    return chosen


def check_next(
    latest: Dated, effective_from: datetime, *, now: datetime, field: str, what: str, reason: str
) -> None:
    """A new version takes effect neither in the past (history is never rewritten) nor
    before the version it follows."""
    if effective_from < now:
        raise InvalidInput([(field, "must not be in the past")])
    if effective_from < latest.effective_from:
        raise RuleViolation(
            f"{what} version {latest.version} takes effect at "
            f"{latest.effective_from.isoformat()}; a newer version cannot take effect before "
            "it",
            reason=reason,
        )


def next_version(versions: Sequence[W], new: W, *, now: datetime, field: str, what: str,
                 reason: str) -> W:
    """``new`` as the version after ``versions``' last, once ``check_next`` allows it."""
    latest = versions[-1]
    check_next(latest, new.effective_from, now=now, field=field, what=what, reason=reason)
    published = new.with_version(latest.version + 1, new.effective_from)
    assert isinstance(published, type(new))
    return published
