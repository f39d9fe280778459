"""`ledger audit replay`: every balance recomputed from the postings in the exported events
alone, and every closed day's statement checked against it.

A reducer of its own, on purpose: it reads the stored JSON as docs/audit-format.md
("Reading events") describes it, with nothing of the ledger's domain, projections or
transcoder, so that a mistake there cannot hide itself here. It keeps, per account,
currency and bucket, the balance; per event, that the postings sum to zero in each
currency; and per calendar day not yet closed, the movements booked into it (by kind), so
that when a ``PeriodBook.DayClosed`` entry comes, the day's opening and closing balances
and movements are at hand to compare with its statement, line by line. Memory grows with
the accounts and the open days, not with the log.

The stored JSON is read by stored_json.py; a statement's lines are drawn and compared by
statement_lines.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from ledger.audit.export_file import EntryRecord, Header, Malformed, Record
from ledger.audit.statement_lines import (
    by_account,
    line_differences,
    moved_differences,
    statement_lines,
)
from ledger.audit.stored_json import (
    DAY_STATEMENT,
    EPOCH,
    MICROSECOND,
    REFUND,
    Key,
    Line,
    Unreadable,
    day_bounds,
    field_of,
    micros,
    posting_of,
    statement_line_of,
    values_of,
    zone,
)

# What moved the money, as statements name the movements: the topic's class-qualified name
# (after the module) → (the field holding the postings, the field of their booking time,
# the movement kind). A refund's are inside its record (``REFUNDED``).
BOOKINGS: dict[str, tuple[str, str, str]] = {
    "Order.Paid": ("postings", "paid_at", "payment"),
    "Order.Settled": ("postings", "settled_at", "settlement"),
    "Payout.Requested": ("postings", "requested_at", "payout_requested"),
    "Payout.Rejected": ("postings", "at", "payout_rejected"),
    "Payout.Paid": ("postings", "at", "payout_paid"),
    "Payout.Failed": ("postings", "at", "payout_failed"),
}
REFUNDED = "Order.Refunded"
REFUND_KIND = "refund"
DAY_CLOSED = "PeriodBook.DayClosed"
BOOK_OPENED = "PeriodBook.Opened"


@dataclass(frozen=True)
class Difference:
    seq: int  # the entry it was found at
    message: str
    day: str = ""  # the closed day it concerns, if any


@dataclass(frozen=True)
class DayCheck:
    day: str
    seq: int  # the DayClosed entry
    lines: int  # the statement's lines
    differences: int


@dataclass
class _Day:
    """The movements booked into one calendar day, by account, currency, bucket and kind."""

    moved: dict[tuple[Key, str], int] = field(default_factory=lambda: defaultdict(int))
    count: int = 0  # movements (postings), as a statement counts them
    first: int = 0  # log position of the first and last
    last: int = 0

    def add(self, key: Key, kind: str, amount: int, position: int) -> None:
        self.moved[(key, kind)] += amount
        if not self.count:
            self.first = position
        self.count += 1
        self.last = position


@dataclass
class ReplayReport:
    platform: str
    entries: int = 0
    money_events: int = 0  # entries whose postings were applied
    balances: dict[Key, int] = field(default_factory=dict)
    days: list[DayCheck] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    last_position: int = 0  # the log position of the last entry replayed

    @property
    def ok(self) -> bool:
        return not self.differences


class Reducer:
    """Applies entries one at a time; ``report()`` gives the balances and differences."""

    def __init__(self, platform: str = "") -> None:
        self.platform = platform
        self.balances: dict[Key, int] = defaultdict(int)
        self.entries = 0
        self.money_events = 0
        self.last_position = 0
        self.days: list[DayCheck] = []
        self.differences: list[Difference] = []
        self._timezone: ZoneInfo | None = None  # the PeriodBook's, once it opened
        self._timezone_name = ""
        self._before_book: list[tuple[int, Key, str, int, int]] = []  # until then
        self._open_days: dict[str, _Day] = {}
        self._closed_balances: dict[Key, int] = defaultdict(int)  # up to the last closed day
        self._last_closed = ""
        self._last_closed_seq = -1
        self._bounds: tuple[int, int, str] = (0, 0, "")

    def entry(self, seq: int, position: int, topic: str, state: bytes) -> None:
        self.entries += 1
        self.last_position = max(self.last_position, position)
        name = topic.rpartition(":")[2]
        if name not in BOOKINGS and name not in (REFUNDED, DAY_CLOSED, BOOK_OPENED):
            return
        try:
            event = orjson.loads(state)
            if type(event) is not dict:
                raise Unreadable("its state is not a JSON object")
            if name == BOOK_OPENED:
                self._book_opened(event)
            elif name == DAY_CLOSED:
                self._day_closed(seq, field_of(event, "statement"))
            else:
                self._apply(seq, position, name, event)
        except (Unreadable, orjson.JSONDecodeError, OverflowError) as error:
            self.differences.append(Difference(seq, f"entry {seq} ({name}) cannot be read as "
                                                    f"docs/audit-format.md says: {error}"))

    # --- postings ---------------------------------------------------------------------------

    def _apply(self, seq: int, position: int, name: str, event: dict[str, Any]) -> None:
        if name == REFUNDED:
            refund = values_of(field_of(event, "refund"), "refund", REFUND)
            postings, at, kind = refund[2], micros(refund[3]), REFUND_KIND
        else:
            postings_field, at_field, kind = BOOKINGS[name]
            postings, at = field_of(event, postings_field), micros(field_of(event, at_field))
        if type(postings) is not list:
            raise Unreadable("its postings are not a list")
        read = [posting_of(p) for p in postings]
        totals: dict[str, int] = defaultdict(int)
        for key, amount in read:
            totals[key[1]] += amount
        unbalanced = {currency: total for currency, total in totals.items() if total}
        if unbalanced:
            sums = ", ".join(f"{total} {currency}" for currency, total in sorted(
                unbalanced.items()))
            self.differences.append(Difference(
                seq, f"entry {seq} ({name}): its postings sum to {sums}, not zero"))
        if read:
            self.money_events += 1
        for key, amount in read:
            self.balances[key] += amount
            self._book(seq, at, key, kind, amount, position)

    def _book(self, seq: int, at: int, key: Key, kind: str, amount: int,
              position: int) -> None:
        if self._timezone is None:
            self._before_book.append((at, key, kind, amount, position))
            return
        day = self._day_of(at)
        if day <= self._last_closed:
            self.differences.append(Difference(
                seq, f"entry {seq} books {amount} {key[1]} to {key[0]} ({key[2]}) on {day}, "
                     f"a day closed before it (entry {self._last_closed_seq} closed "
                     f"{self._last_closed})", day))
            self._closed_balances[key] += amount
            return
        self._open_days.setdefault(day, _Day()).add(key, kind, amount, position)

    def _book_opened(self, event: dict[str, Any]) -> None:
        name = field_of(event, "timezone")
        self._timezone, self._timezone_name = zone(name), name
        waiting, self._before_book = self._before_book, []
        for at, key, kind, amount, position in waiting:
            self._open_days.setdefault(self._day_of(at), _Day()).add(key, kind, amount,
                                                                     position)

    def _day_of(self, at: int) -> str:
        """The calendar day ``at`` falls on in the book's time zone. The last day's bounds
        are kept: the log's times come nearly in order."""
        start, end, day = self._bounds
        if start <= at < end:
            return day
        assert self._timezone is not None
        local = (EPOCH + at * MICROSECOND).astimezone(self._timezone).date()
        day = local.isoformat()
        first, after = day_bounds(local, self._timezone)
        self._bounds = (first, after, day)
        return day

    # --- closed days ------------------------------------------------------------------------

    def _day_closed(self, seq: int, statement: Any) -> None:
        values = values_of(statement, "day_statement", DAY_STATEMENT)
        day, timezone, lines, events, first, last = values[:6]
        moved, moved_digest = values[DAY_STATEMENT.index("moved_lines"):][:2]
        if type(day) is not str or type(lines) is not list or type(moved_digest) is not str:
            raise Unreadable("its statement has no day or no lines")
        stated: list[tuple[Key, Line]] | tuple[int, str] = (
            (moved, moved_digest) if moved_digest else
            [statement_line_of(line) for line in lines])
        found: list[str] = []
        if self._timezone is None or timezone != self._timezone_name:
            found.append(f"{day}: the statement's time zone {timezone!r} is not the "
                         f"book's ({self._timezone_name or 'none opened'}): not compared")
        elif self._last_closed and day <= self._last_closed:
            found.append(f"{day} closed again, or before {self._last_closed}, the last day "
                         "closed")
        else:
            found = self._compare(day, stated, events, first, last)
            self._last_closed, self._last_closed_seq = day, seq
        for message in found:
            self.differences.append(Difference(seq, f"entry {seq}: {message}", day))
        self.days.append(DayCheck(day, seq, moved if moved_digest else len(lines),
                                  len(found)))

    def _compare(self, day: str, stated: list[tuple[Key, Line]] | tuple[int, str],
                 events: Any, first: Any, last: Any) -> list[str]:
        """The day's statement against the replay: opening balances from everything booked
        before the day, its movements by kind, closing balances; then the day is folded into
        the closed balances. ``stated``: the statement's lines (days closed before
        statements were paged), or the count and digest of its lines that moved."""
        closed = self._closed_balances
        for earlier in sorted(d for d in self._open_days if d < day):
            for (key, _), amount in self._open_days.pop(earlier).moved.items():
                closed[key] += amount
        today = self._open_days.pop(day, _Day())
        moved: dict[Key, dict[str, int]] = defaultdict(dict)
        for (key, kind), amount in today.moved.items():
            moved[key][kind] = moved[key].get(kind, 0) + amount
        replayed = statement_lines(closed, moved)
        for (key, _), amount in today.moved.items():
            closed[key] += amount
        if type(stated) is tuple:
            found = moved_differences(day, stated, replayed)
        else:
            found = self._line_differences(day, stated, replayed)
        for what, said, counted in (("movements", events, today.count),
                                    ("first position", first, today.first),
                                    ("last position", last, today.last)):
            if said != counted:
                found.append(f"{day}: the statement's {what} is {said}, the replay's "
                             f"{counted}")
        return found

    @staticmethod
    def _line_differences(day: str, lines: list[tuple[Key, Line]],
                          replayed: dict[Key, Line]) -> list[str]:
        if lines and all(key[2] == "" for key, _ in lines):
            # A statement closed before lines had buckets: one line per account.
            replayed = by_account(replayed)
        stated = dict(lines)
        found = []
        for key in sorted(stated.keys() | replayed.keys()):
            found += line_differences(day, key, stated.get(key), replayed.get(key))
        return found

    def report(self) -> ReplayReport:
        return ReplayReport(self.platform, self.entries, self.money_events,
                            {k: v for k, v in sorted(self.balances.items())},
                            self.days, self.differences, self.last_position)


class NotReplayable(ValueError):
    """An export that replay cannot read: a line that is not a record."""


def replay(records: Iterable[Record]) -> ReplayReport:
    """Replays a platform's records (header first; keys and heads are passed over). Run
    ``verify`` first: replay trusts the entries it is given."""
    reducer = Reducer()
    apply = reducer.entry
    for record in records:
        if type(record) is EntryRecord:
            apply(record.seq, record.position, record.topic, record.state)
        elif isinstance(record, Header):
            reducer.platform = record.platform
        elif isinstance(record, Malformed):
            raise NotReplayable(f"line {record.line}: {record.message}")
    return reducer.report()
