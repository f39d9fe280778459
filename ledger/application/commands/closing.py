"""The commands that close a period: a day (in two steps) with its statement, the rail's
bills and acknowledged breaks that a day's close checks first, and a quarter with its tax
report."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

from ledger.application.commands.base import Command
from ledger.application.commands.checks import (
    Violations,
    check_day,
    check_quarter,
    check_text,
)
from ledger.domain.periods import DayStatement
from ledger.domain.quarters import QuarterReport
from ledger.domain.reconciliation import BILL_KINDS, BillLine


@dataclass(frozen=True)
class BeginClosingDay(Command):
    """CloseDay's first step: the day stops taking writes before its statement is drawn, so
    no write dated into it (a backfill) can commit between the drawing and the close.

    ``close_key`` is the CloseDay request's own key: the step checks it before shutting the
    day, since a key already taken by another request would refuse the second step and
    leave the day shut without its statement."""

    day: str
    close_key: str = ""
    derived: ClassVar[tuple[str, ...]] = ("close_key",)

    @classmethod
    def first_step_of(cls, close: CloseDay) -> BeginClosingDay:
        """Keyed after the CloseDay request's key, so that a retry repeats it (and the key
        reused for another day is refused before anything is written); hashed, since that
        key may already be as long as a key can be."""
        digest = hashlib.sha256(close.idempotency_key.encode()).hexdigest()
        return cls(f"{digest}:closing", close.day, close.idempotency_key)

    def second_step(self) -> CloseDay:
        """The request whose first step this is, as its key records it."""
        return CloseDay(self.close_key, self.day)

    def violations(self) -> Violations:
        v = super().violations()
        check_day(v, "day", self.day)
        return v


@dataclass(frozen=True)
class CloseDay(Command):
    """Closes a calendar day with its statement, computed from the read models once they
    had caught up with the whole log (see projections/statements.py)."""

    day: str
    statement: DayStatement | None = None
    derived: ClassVar[tuple[str, ...]] = ("statement",)

    def violations(self) -> Violations:
        v = super().violations()
        check_day(v, "day", self.day)
        return v


@dataclass(frozen=True)
class ImportBill(Command):
    """A rail's bill of ``day``, read by the API into ``lines``; ``digest`` (SHA-256 of the
    file) names it, so the lines are left out of the fingerprint."""

    day: str
    kind: str
    fmt: str
    digest: str
    lines: tuple[BillLine, ...] = ()
    derived: ClassVar[tuple[str, ...]] = ("lines",)

    def violations(self) -> Violations:
        v = super().violations()
        check_day(v, "day", self.day)
        if self.kind not in BILL_KINDS:
            v.append(("kind", f"must be one of {', '.join(BILL_KINDS)}"))
        return v


@dataclass(frozen=True)
class AcknowledgeBreak(Command):
    day: str
    break_id: str
    reason: str

    def violations(self) -> Violations:
        v = super().violations()
        check_day(v, "day", self.day)
        check_text(v, "break_id", self.break_id)
        if not self.break_id:
            v.append(("break_id", "is required"))
        if not self.reason.strip():
            v.append(("reason", "acknowledging a break needs a reason"))
        check_text(v, "reason", self.reason)
        return v


@dataclass(frozen=True)
class CloseQuarter(Command):
    """Closes a quarter with its report, drawn from the read models once they had caught up
    with the whole log (see projections/tax.py)."""

    quarter: str
    report: QuarterReport | None = None
    derived: ClassVar[tuple[str, ...]] = ("report",)

    def violations(self) -> Violations:
        v = super().violations()
        check_quarter(v, "quarter", self.quarter)
        return v
