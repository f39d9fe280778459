"""Reconciliation with the payment rail (对账): the rail's bill lines against the ledger's
own records of a day, as a pure function (no store, no clock), so that it is fast and can be
checked on random days.

A record or a bill line is named by our id: the payment id, the refund id or the payout id
(the rail's idempotency key, e.g. WeChat's out_trade_no, out_refund_no, out_bill_no). All
the lines that name one record are held against it together: a payout the rail paid in
parts matches when its parts add up. Each record belongs to the day the ledger dated it;
a line on the bill of the day before or after names the same record and matches it there
(a timing difference, not a break). What does not match is a break, one per record or per
unknown id, with both sides:

- ``amount_differs``: both sides have it, in the same state, for different amounts;
- ``state_differs``: paid (or in flight) here, failed or pending there, or the reverse;
- ``not_in_ledger``: the bill names an id the ledger has no record of near that day;
- ``not_in_bill``: the ledger moved money the bill does not show (a record failed here
  that the rail never shows moved nothing on either side, and is no break).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

PAYMENT = "payment"
REFUND = "refund"
PAYOUT = "payout"
TRADE = "trade"
TRANSFER = "transfer"
# Which records each kind of bill shows: the trade bill the customers' payments and refunds,
# the transfer bill the payouts.
BILL_KINDS: dict[str, tuple[str, ...]] = {TRADE: (PAYMENT, REFUND), TRANSFER: (PAYOUT,)}

SUCCESS = "success"
PENDING = "pending"
FAILED = "failed"
STATES = (SUCCESS, PENDING, FAILED)

AMOUNT_DIFFERS = "amount_differs"
STATE_DIFFERS = "state_differs"
NOT_IN_LEDGER = "not_in_ledger"
NOT_IN_BILL = "not_in_bill"
BREAK_TYPES = (AMOUNT_DIFFERS, STATE_DIFFERS, NOT_IN_LEDGER, NOT_IN_BILL)

# A break's status: open until a correcting write makes it go (resolved) or finance accepts
# it with a reason (acknowledged); only an open break can be acknowledged.
OPEN = "open"
ACKNOWLEDGED = "acknowledged"
RESOLVED = "resolved"


@dataclass(frozen=True)
class BillLine:
    """One line of a rail's bill, in the ledger's terms: amount in minor units, state one
    of ``STATES``, ``day`` the day of the bill it came on."""

    day: str
    kind: str  # payment, refund or payout
    ref: str  # our id
    rail_ref: str  # the rail's own id for it
    amount: int
    currency: str
    state: str
    at: str = ""  # the rail's time, as the bill prints it


@dataclass(frozen=True)
class LedgerRecord:
    """What the ledger says of one payment, refund or payout: ``day`` it is dated in the
    platform's time zone (paid, refunded, or sent to the rail: approved)."""

    day: str
    kind: str
    ref: str
    amount: int
    currency: str
    state: str


@dataclass(frozen=True)
class Break:
    day: str
    kind: str
    ref: str
    type: str
    record: LedgerRecord | None
    lines: tuple[BillLine, ...]

    @property
    def break_id(self) -> str:
        """Stable within its day: the same difference found again is the same break, and a
        different one (its type changed) is another, needing its own resolution."""
        return f"{self.kind}:{self.ref}:{self.type}"


@dataclass(frozen=True)
class Reconciled:
    day: str
    matched: int  # records matched, timing differences included
    timing: int  # of them, matched by a line on the bill of the day before or after
    breaks: tuple[Break, ...]


class _Days:
    """Day strings to ordinals, each parsed once (a day's bill repeats its day per line)."""

    def __init__(self) -> None:
        self._known: dict[str, int] = {}

    def __call__(self, day: str) -> int:
        ordinal = self._known.get(day)
        if ordinal is None:
            ordinal = self._known[day] = date.fromisoformat(day).toordinal()
        return ordinal


def reconcile(day: str, records: Iterable[LedgerRecord], lines: Iterable[BillLine]) -> Reconciled:
    """The breaks of ``day``. Pass the records and the bill lines of the day and of the
    days on either side (so timing differences are seen); a record of another day, and a
    line that names one, are that day's business and are not reported here."""
    days = _Days()
    target = days(day)
    by_ref: dict[tuple[str, str], list[LedgerRecord]] = defaultdict(list)
    for record in records:
        by_ref[(record.kind, record.ref)].append(record)
    lines_by_ref: dict[tuple[str, str], list[BillLine]] = defaultdict(list)
    for line in lines:
        lines_by_ref[(line.kind, line.ref)].append(line)
    matched = timing = 0
    breaks: list[Break] = []
    for key in sorted(by_ref.keys() | lines_by_ref.keys()):
        found = by_ref.get(key, [])
        billed = lines_by_ref.get(key, [])
        if not found:
            own = tuple(x for x in billed if days(x.day) == target)
            if own:
                breaks.append(Break(day, key[0], key[1], NOT_IN_LEDGER, None, own))
            continue
        record = _combined(found)
        at = days(record.day)
        near = tuple(x for x in billed if abs(days(x.day) - at) <= 1)
        far = tuple(x for x in billed if days(x.day) == target and abs(at - target) > 1)
        if far:
            breaks.append(Break(day, key[0], key[1], NOT_IN_LEDGER, None, far))
        if at != target:
            continue
        kind = _compare(record, near)
        if kind:
            breaks.append(Break(day, key[0], key[1], kind, record, near))
        else:
            matched += 1
            timing += any(x.day != record.day for x in near)
    return Reconciled(day, matched, timing, tuple(breaks))


def _combined(found: list[LedgerRecord]) -> LedgerRecord:
    """Records sharing an id (two storefronts' refunds both named r1) are one to the rail,
    which would have refused the second id: held against the bill as their sum."""
    if len(found) == 1:
        return found[0]
    states = {r.state for r in found}
    currencies = {r.currency for r in found}
    return LedgerRecord(
        min(r.day for r in found),
        found[0].kind,
        found[0].ref,
        sum(r.amount for r in found),
        found[0].currency if len(currencies) == 1 else "",
        found[0].state if len(states) == 1 else PENDING,
    )


def bill_side(lines: tuple[BillLine, ...]) -> tuple[str, int, str]:
    """(state, amount, currency) the bill gives a record, from all its lines: pending while
    any part is, failed when every part failed, else paid, for what the paid parts add to."""
    states = {x.state for x in lines}
    currencies = {x.currency for x in lines}
    currency = lines[0].currency if len(currencies) == 1 else ""
    if PENDING in states:
        return PENDING, sum(x.amount for x in lines), currency
    if states == {FAILED}:
        return FAILED, sum(x.amount for x in lines), currency
    return SUCCESS, sum(x.amount for x in lines if x.state == SUCCESS), currency


def _compare(record: LedgerRecord, lines: tuple[BillLine, ...]) -> str:
    """The break between a record and its lines, or '' when they match."""
    if not lines:
        return "" if record.state == FAILED else NOT_IN_BILL
    state, amount, currency = bill_side(lines)
    if state != record.state:
        return STATE_DIFFERS
    if amount != record.amount or currency != record.currency:
        return AMOUNT_DIFFERS
    return ""
