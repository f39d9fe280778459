"""Every rule of an order's life, decided apart from the Order aggregate (order.py).

Each ``decide_…(order, command)`` reads the order as it stands and returns the events to
record, or raises the domain's error; it changes nothing (see decisions.py). The split is
decided once, on payment, and written into the Paid event with the plan version and the
upline chain it used; refunds reverse the recorded shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from ledger.domain.decisions import Event
from ledger.domain.errors import AlreadyExists, InvalidInput, RuleViolation
from ledger.domain.money import (
    AVAILABLE,
    CLEARING,
    CUSTOMER_FUNDS,
    FROZEN,
    Posting,
    assert_balanced,
    merge_postings,
)
from ledger.domain.plan import CommissionPlan
from ledger.domain.refunds import RefundLine, RefundRecord, check_refund_lines, refund_postings
from ledger.domain.split import LineItem, Share, UplineMember, split_line
from ledger.domain.team_decisions import check_paid_after_enrolment

if TYPE_CHECKING:
    from ledger.domain.order import Order

PLACED = "placed"
PAID = "paid"
COMPLETED = "completed"
CANCELLED = "cancelled"

# --- commands: what is asked of an order ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Place:
    platform_id: str
    order_id: str
    storefront_id: str
    customer_id: str
    seller_id: str
    currency: str
    lines: tuple[LineItem, ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class Pay:
    """``backdated``: recorded after the fact (a backfill), with the chain as it stood at
    ``at``; the event says so, and the team numbers follow the tree of that time too."""

    payment_id: str
    amount: int
    plan: CommissionPlan
    chain: tuple[UplineMember, ...]
    self_purchase: bool
    at: datetime
    backdated: bool = False
    seller_enrolled_at: datetime | None = None  # the seller's enrolment, for a backdated one


@dataclass(frozen=True, slots=True)
class Complete:
    at: datetime


@dataclass(frozen=True, slots=True)
class Cancel:
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    lines: tuple[RefundLine, ...]
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Settle:
    at: datetime


@dataclass(frozen=True, slots=True)
class OpenCase:
    case_id: str
    line_no: int
    reason: str


@dataclass(frozen=True, slots=True)
class CloseCase:
    case_id: str
    resolution: str


# --- events: what is recorded, field for field as stored ------------------------------------


@dataclass(frozen=True, slots=True)
class Placed(Event):
    platform_id: str
    order_id: str
    storefront_id: str
    customer_id: str
    seller_id: str
    currency: str
    lines: tuple[LineItem, ...]
    placed_at: datetime


@dataclass(frozen=True, slots=True)
class Paid(Event):
    method: ClassVar[str] = "_paid"
    payment_id: str
    paid_at: datetime
    plan_version: int
    freeze_days: int
    upline_chain: tuple[str, ...]
    shares: tuple[Share, ...]
    postings: tuple[Posting, ...]
    backdated: bool


@dataclass(frozen=True, slots=True)
class Completed(Event):
    method: ClassVar[str] = "_completed"
    completed_at: datetime


@dataclass(frozen=True, slots=True)
class Cancelled(Event):
    method: ClassVar[str] = "_cancelled"
    reason: str
    cancelled_at: datetime


@dataclass(frozen=True, slots=True)
class Refunded(Event):
    method: ClassVar[str] = "_refunded"
    refund: RefundRecord


@dataclass(frozen=True, slots=True)
class Settled(Event):
    method: ClassVar[str] = "_settled"
    settled_at: datetime
    postings: tuple[Posting, ...]


@dataclass(frozen=True, slots=True)
class AfterSaleOpened(Event):
    method: ClassVar[str] = "_after_sale_opened"
    case_id: str
    line_no: int
    reason: str


@dataclass(frozen=True, slots=True)
class AfterSaleClosed(Event):
    method: ClassVar[str] = "_after_sale_closed"
    case_id: str
    resolution: str


# --- decisions ------------------------------------------------------------------------------


def decide_place(existing: Order | None, cmd: Place) -> list[Event]:
    """An order id is placed once (``existing``: the order found under it, if any)."""
    if existing is not None:
        raise AlreadyExists(f"order {cmd.order_id} already exists")
    return [Placed(cmd.platform_id, cmd.order_id, cmd.storefront_id, cmd.customer_id,
                   cmd.seller_id, cmd.currency, cmd.lines, cmd.at)]


def decide_pay(order: Order, cmd: Pay) -> list[Event]:
    """The payment of the whole order, split along the upline chain, every share frozen. A
    payment recorded now comes after the seller's enrolment in the log (the seller existed
    when the order was placed), whatever the servers' clocks say; a backdated one may not be
    dated before it."""
    check_status(order, PLACED, "pay")
    if cmd.backdated and cmd.seller_enrolled_at is not None:
        check_paid_after_enrolment(order.seller_id, cmd.seller_enrolled_at, cmd.at)
    if cmd.amount != order.total:
        raise RuleViolation(
            f"payment of {cmd.amount} does not match the order total {order.total}",
            reason="PAYMENT_AMOUNT_MISMATCH",
        )
    shares: list[Share] = []
    for line in order.lines:
        shares.extend(split_line(line, cmd.chain, cmd.plan, self_purchase=cmd.self_purchase))
    postings = merge_postings(
        [Posting(CUSTOMER_FUNDS, CLEARING, order.currency, -order.total)]
        + [Posting(s.account, FROZEN, order.currency, s.amount) for s in shares]
    )
    assert_balanced(postings)
    return [Paid(cmd.payment_id, cmd.at, cmd.plan.version, cmd.plan.freeze_days,
                 tuple(m.reseller_id for m in cmd.chain[: cmd.plan.levels]), tuple(shares),
                 postings, cmd.backdated)]


def decide_complete(order: Order, cmd: Complete) -> list[Event]:
    check_status(order, PAID, "complete")
    return [Completed(cmd.at)]


def decide_cancel(order: Order, cmd: Cancel) -> list[Event]:
    """Only an unpaid order can be cancelled; a paid one is refunded."""
    check_status(order, PLACED, "cancel")
    return [Cancelled(cmd.reason, cmd.at)]


def decide_refund(order: Order, cmd: Refund) -> list[Event]:
    """Reverses every share of the refunded lines in proportion; the platform takes the rest
    (see refunds.py). Frozen shares before settlement, available ones after (a clawback)."""
    if order.status not in (PAID, COMPLETED):
        raise RuleViolation(
            f"order {order.order_id} is {order.status}; only a paid order can be refunded",
            reason="ORDER_NOT_PAID",
        )
    if cmd.refund_id in order.refunds:
        raise AlreadyExists(f"refund {cmd.refund_id} of order {order.order_id} already exists")
    paid = order.paid_by_line
    check_refund_lines(paid, order.refunded_by_line, cmd.lines)
    postings = refund_postings(order.shares, paid, order.refunded_by_line, cmd.lines,
                               currency=order.currency, bucket=order.bucket)
    return [Refunded(RefundRecord(cmd.refund_id, tuple(cmd.lines), postings, cmd.at,
                                  cmd.reason))]


def decide_settle(order: Order, cmd: Settle) -> list[Event]:
    """Releases every share still held, frozen → available, once the freeze window after
    completion has passed with no after-sales case open."""
    check_status(order, COMPLETED, "settle")
    if order.settled:
        raise RuleViolation(f"order {order.order_id} is already settled",
                            reason="ORDER_SETTLED")
    due = order.due_at()
    assert due is not None
    if cmd.at < due:
        raise RuleViolation(f"order {order.order_id} is frozen until {due.isoformat()}",
                            reason="FREEZE_WINDOW_OPEN")
    if order.has_open_case:
        raise RuleViolation(f"order {order.order_id} has an open after-sales case",
                            reason="AFTER_SALE_OPEN")
    postings = []
    for account, amount in order.remaining().items():
        postings.append(Posting(account, FROZEN, order.currency, -amount))
        postings.append(Posting(account, AVAILABLE, order.currency, amount))
    merged = merge_postings(postings)
    assert_balanced(merged)
    return [Settled(cmd.at, merged)]


def decide_open_case(order: Order, cmd: OpenCase) -> list[Event]:
    """An open case holds the order's shares frozen until it closes, even past the window."""
    if order.status not in (PAID, COMPLETED):
        raise RuleViolation(
            f"order {order.order_id} is {order.status}; after-sales needs a paid order",
            reason="ORDER_NOT_PAID",
        )
    if cmd.case_id in order.cases:
        raise AlreadyExists(f"after-sales case {cmd.case_id} already exists")
    if order.line(cmd.line_no) is None:
        raise InvalidInput([("line_no", f"order {order.order_id} has no line {cmd.line_no}")])
    return [AfterSaleOpened(cmd.case_id, cmd.line_no, cmd.reason)]


def decide_close_case(order: Order, cmd: CloseCase) -> list[Event]:
    case = order.cases.get(cmd.case_id)
    if case is None:
        raise InvalidInput([("case_id", f"order {order.order_id} has no case {cmd.case_id}")])
    if not case.open:
        raise RuleViolation(f"after-sales case {cmd.case_id} is already closed",
                            reason="CASE_CLOSED")
    return [AfterSaleClosed(cmd.case_id, cmd.resolution)]


def check_status(order: Order, required: str, action: str) -> None:
    if order.status != required:
        raise RuleViolation(
            f"cannot {action} order {order.order_id}: it is {order.status}, not {required}",
            reason=f"ORDER_{order.status.upper()}",
        )


def settled_postings(events: Sequence[Event]) -> tuple[Posting, ...]:
    """What a settlement decided moves (for the wallets it credits)."""
    return tuple(p for e in events if isinstance(e, Settled) for p in e.postings)
