"""Settlement periods (账期): calendar days in the platform's time zone.

Closing a day records its statement for good. A day can be closed only once it is over, and
nothing is ever recorded into a closed day: a late refund of an order from a closed day
lands, as a correction, in the day that is open.

After the first, days close one after another, each the day after the last closed: closing a
later day shuts the days before it too, so a day skipped would be shut with no statement, and
the chain of statements (each opening where the one before closed) would have a hole. The
first day closed is finance's choice of where the chain starts.

Closing is two steps, two writes: ``decide_begin_closing`` shuts the day to writes, then
``decide_close`` records its statement, drawn in between from the whole log. Once shut,
nothing can change what happened in the day, so its statement is fixed by the log: anyone
may draw it, and all draw the same. That is what makes the middle safe. A close whose server
died after the first step (the day shut, with no statement: ``unfinished``) is finished by
whoever comes next, a repeat of the request, a close of that day with any key, or a server's
finisher (ledger/application/closing.py), and until then it is the next day to close. Two
servers closing the day at once each write a step only if the book has not moved since they
read it; the one that lost finds the day shut (and joins the close) or closed (and the first
statement stands).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import ClassVar
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate, event

from ledger.domain.copying import CheapCopy
from ledger.domain.decisions import Decided, Event
from ledger.domain.errors import AlreadyExists, RuleViolation
from ledger.domain.ids import stable_id

# The ledger's calendar: days, months and backfilled business times lie in these years. Far
# from any real date on either side, and far inside the years in which every time zone's
# days and months can be computed (Python's datetime holds 0001 to 9999 in UTC only; the
# first day of 0001 in Asia/Shanghai began in year 0).
FIRST_YEAR = 1900
LAST_YEAR = 9998

@dataclass(frozen=True)
class StatementLine:
    """One bucket of one account in one currency (frozen, available, in flight, paid out…)
    over one day: a settlement shows as frozen down and available up, a payout as in
    flight down and paid out up, where one line per account would net them to nothing.
    Statements closed before lines were split by bucket have one line per account, every
    bucket together, and an empty ``bucket``."""

    account: str
    currency: str
    opening: int
    movements: tuple[tuple[str, int], ...]  # (kind of movement, net amount), by kind
    closing: int
    bucket: str = ""


@dataclass(frozen=True)
class DayStatement:
    """A day's statement. As a ``DayClosed`` event records it, it is the day's summary and
    no lines: the lines (one per account, currency and bucket with a balance or a movement)
    are a read model, read a page at a time, so no event grows with the accounts. What the
    event binds them with is ``moved_lines_digest``: a SHA-256 over the lines that moved
    that day (``moved_lines_digest`` below); the lines that did not move carry the closing
    balances of the days before, which their own digests bound. Days closed before held
    every line in the event (``lines``) and no such digest."""

    day: str  # YYYY-MM-DD
    timezone: str
    lines: tuple[StatementLine, ...]  # only in events of days closed before lines were paged
    events: int  # movements covered
    first_position: int
    last_position: int
    digest: str  # sha256 over the day's movements, in log order
    # The platform's audit tree head signed when the statement was drawn: the statement
    # covers exactly that history (docs/audit-format.md). Empty for days closed before.
    tree_size: int = 0
    tree_root: str = ""  # hex
    head_signed_at_us: int = 0
    head_key_id: str = ""
    head_signature: str = ""  # hex
    # The lines with a movement that day, and their digest; '' for days closed before.
    moved_lines: int = 0
    moved_lines_digest: str = ""
    # The day's reconciliation with the payment rail when drawn (not_run, clean,
    # breaks_open, breaks_acknowledged); '' for days closed before reconciliation.
    reconciliation: str = ""

    @property
    def lines_recorded(self) -> bool:
        """Whether the event holds the statement's lines (days closed before paging)."""
        return not self.moved_lines_digest


def moved_lines_digest(lines: Iterable[StatementLine]) -> str:
    """SHA-256 over the lines that moved, in (account, currency, bucket) order, each
    ``account|currency|bucket|opening|kind=amount,…|closing``; docs/audit-format.md says the
    same for an auditor, whose replay computes it on its own."""
    digest = hashlib.sha256()
    for line in sorted(lines, key=lambda x: (x.account, x.currency, x.bucket)):
        kinds = ",".join(f"{kind}={amount}" for kind, amount in line.movements)
        digest.update(f"{line.account}|{line.currency}|{line.bucket}|{line.opening}|{kinds}|"
                      f"{line.closing}\n".encode())
    return digest.hexdigest()


def local_day(at: datetime, timezone: str) -> str:
    return at.astimezone(ZoneInfo(timezone)).date().isoformat()


class PeriodBook(Decided, CheapCopy, Aggregate):
    # The day whose closing has begun: it takes no more writes while its statement is drawn.
    # A class default, so that logs from before closings had a first step replay unchanged.
    closing: str = ""

    @staticmethod
    def create_id(platform_id: str) -> UUID:
        return stable_id("period-book", platform_id)

    @event("Opened")
    def __init__(self, platform_id: str, timezone: str) -> None:
        self.platform_id = platform_id
        self.timezone = timezone
        self.closed: dict[str, DayStatement] = {}

    @property
    def last_closed(self) -> str:
        return max(self.closed, default="")

    def check_open(self, at: datetime) -> None:
        """Refuses to record anything dated into a closed day, or one being closed (e.g. a
        backfill, or a server clock behind)."""
        day = local_day(at, self.timezone)
        if day <= max(self.last_closed, self.closing):
            raise RuleViolation(f"{day} is closed; nothing can be recorded into it",
                                reason="PERIOD_CLOSED")

    @property
    def unfinished(self) -> str:
        """The day shut to writes whose statement is not recorded yet: a close in progress,
        or one whose server died between its two steps; '' when there is none."""
        return self.closing if self.closing and self.closing not in self.closed else ""

    @property
    def next_to_close(self) -> str:
        """The day that must be closed next; '' before the first close (any past day).
        A day shut without its statement comes first: closing another would leave it so."""
        if self.unfinished:
            return self.unfinished
        last = self.last_closed
        return (date.fromisoformat(last) + timedelta(days=1)).isoformat() if last else ""

    @event("ClosingBegun")
    def _closing_begun(self, day: str) -> None:
        self.closing = day

    @event("DayClosed")
    def _closed(self, statement: DayStatement, closed_at: datetime) -> None:
        self.closed[statement.day] = statement


@dataclass(frozen=True, slots=True)
class BeginClosing:
    day: str
    now: datetime


@dataclass(frozen=True, slots=True)
class Close:
    statement: DayStatement
    now: datetime


@dataclass(frozen=True, slots=True)
class ClosingBegun(Event):
    method: ClassVar[str] = "_closing_begun"
    day: str


@dataclass(frozen=True, slots=True)
class DayClosed(Event):
    method: ClassVar[str] = "_closed"
    statement: DayStatement
    closed_at: datetime


def decide_begin_closing(book: PeriodBook, cmd: BeginClosing) -> list[Event]:
    """The first step of closing a day: from here on it takes no writes, so the statement
    drawn next from the whole log is the day's last word. A day already being closed is
    left as it is: this close joins (or finishes) that one."""
    if cmd.day in book.closed:
        raise AlreadyExists(f"{cmd.day} is already closed")
    if cmd.day == book.closing:
        return []
    check_closable(book, cmd.day, cmd.now)
    return [ClosingBegun(cmd.day)]


def decide_close(book: PeriodBook, cmd: Close) -> list[Event]:
    """Records the day's statement for good. A day closed since this close began (by
    another server, or a finisher) stays as it was closed: the first statement stands,
    and it is the one this close drew too, since the day was shut before either drew."""
    if cmd.statement.day in book.closed:
        return []
    check_closable(book, cmd.statement.day, cmd.now)
    return [DayClosed(cmd.statement, cmd.now)]


def check_closable(book: PeriodBook, day: str, now: datetime) -> None:
    date.fromisoformat(day)
    if day >= local_day(now, book.timezone):
        raise RuleViolation(f"{day} is not over yet ({book.timezone})",
                            reason="PERIOD_NOT_OVER")
    expected = book.next_to_close
    if expected and day != expected:
        raise RuleViolation(
            f"days close in order: {expected} is the next to close, not {day}",
            reason="PERIOD_OUT_OF_ORDER")
