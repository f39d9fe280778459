"""The quarterly tax report (Decree 810, SAT announcement No. 15 of 2025) and its closing.

Each quarter the platform reports, per payee who earned in it: commission earned, clawed
back, net, paid out gross and tax withheld. Closing a quarter records its report for good,
with the log position it was drawn at: everything up to there is in it (or in an earlier
quarter's), and whatever is recorded later, even dated into a closed quarter (a backfilled
order), lands in the first quarter still open. Quarters close one after another, each once
it is over, so no entry can fall between two reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import ClassVar
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate, event

from ledger.domain.copying import CheapCopy
from ledger.domain.decisions import Decided, Event
from ledger.domain.errors import RuleViolation
from ledger.domain.ids import stable_id

QUARTER = re.compile(r"^([0-9]{4})Q([1-4])$")


def parse_quarter(quarter: str) -> tuple[int, int]:
    """(year, quarter number) of "2026Q1"; ValueError for anything else."""
    found = QUARTER.match(quarter)
    if not found:
        raise ValueError(quarter)
    return int(found[1]), int(found[2])


def quarter_bounds(quarter: str, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) of a quarter in the platform's time zone."""
    year, n = parse_quarter(quarter)
    zone = ZoneInfo(timezone)
    start = datetime(year, 3 * n - 2, 1, tzinfo=zone)
    end = datetime(year + n // 4, 3 * n + 1 if n < 4 else 1, 1, tzinfo=zone)
    return start, end


def next_quarter(quarter: str) -> str:
    year, n = parse_quarter(quarter)
    return f"{year + 1}Q1" if n == 4 else f"{year}Q{n + 1}"


def quarter_of(at: datetime, timezone: str) -> str:
    local = at.astimezone(ZoneInfo(timezone))
    return f"{local.year}Q{(local.month - 1) // 3 + 1}"


@dataclass(frozen=True)
class QuarterLine:
    """One payee's figures in one currency (minor units)."""

    account: str
    currency: str
    earned: int
    clawed_back: int
    paid_gross: int
    tax_withheld: int

    @property
    def net(self) -> int:
        return self.earned - self.clawed_back


@dataclass(frozen=True)
class QuarterReport:
    quarter: str
    timezone: str
    lines: tuple[QuarterLine, ...]
    last_position: int  # the log position the report was drawn at
    closed_at: datetime | None = None


class QuarterBook(Decided, CheapCopy, Aggregate):
    @staticmethod
    def create_id(platform_id: str) -> UUID:
        return stable_id("quarter-book", platform_id)

    @event("Opened")
    def __init__(self, platform_id: str) -> None:
        self.platform_id = platform_id
        self.closed: dict[str, QuarterReport] = {}
        self.last_closed = ""

    def next_to_close(self) -> str:
        return next_quarter(self.last_closed) if self.last_closed else ""

    @event("QuarterClosed")
    def _closed(self, report: QuarterReport, at: datetime) -> None:
        self.closed[report.quarter] = replace(report, closed_at=at)
        self.last_closed = report.quarter


@dataclass(frozen=True, slots=True)
class CloseQuarter:
    report: QuarterReport
    now: datetime


@dataclass(frozen=True, slots=True)
class QuarterClosed(Event):
    method: ClassVar[str] = "_closed"
    report: QuarterReport
    at: datetime


def decide_close_quarter(book: QuarterBook, cmd: CloseQuarter) -> list[Event]:
    """Records the report; a quarter already closed keeps its first report (nothing to
    record)."""
    quarter = cmd.report.quarter
    if quarter in book.closed:
        return []
    _, end = quarter_bounds(quarter, cmd.report.timezone)
    if end > cmd.now:
        raise RuleViolation(f"quarter {quarter} is not over yet", reason="QUARTER_NOT_OVER")
    expected = book.next_to_close()
    if expected and quarter != expected:
        raise RuleViolation(
            f"quarters close one after another: {book.last_closed} was the last closed, "
            f"so {expected} is next",
            reason="QUARTER_OUT_OF_ORDER",
        )
    return [QuarterClosed(cmd.report, cmd.now)]
