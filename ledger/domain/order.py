"""The life of an order: placed → paid → completed, cancelled only before payment, refunded
in parts, held by after-sales cases.

This is the container the store saves: the order's state, what it answers, and how each
event changes it. Every rule is decided in order_decisions.py before anything is recorded
(decisions.py). The split of the money is decided once, on payment, and written into the
Paid event with the plan version and the upline chain it used; refunds reverse the recorded
shares. Replaying the events therefore never recomputes anything with newer rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.copying import CheapCopy
from ledger.domain.decisions import Decided
from ledger.domain.ids import stable_id
from ledger.domain.money import AVAILABLE, FROZEN, Posting
from ledger.domain.order_decisions import CANCELLED, COMPLETED, PAID, PLACED
from ledger.domain.refunds import RefundLine, RefundRecord
from ledger.domain.split import LineItem, Share, reversed_so_far

__all__ = ["CANCELLED", "COMPLETED", "PAID", "PLACED", "AfterSaleCase", "Order", "OrderKey",
           "RefundLine", "order_name"]


@dataclass(frozen=True)
class OrderKey:
    """An order's name within its platform. Each storefront numbers its own orders, so an
    order id names an order only together with the storefront that placed it."""

    storefront_id: str
    order_id: str


@dataclass
class AfterSaleCase:
    case_id: str
    line_no: int
    reason: str
    open: bool = True
    resolution: str = ""


class Order(Decided, CheapCopy, Aggregate):
    """One order of one storefront, with every movement of its money."""

    @staticmethod
    def create_id(platform_id: str, storefront_id: str, order_id: str) -> UUID:
        """Each storefront numbers its own orders: two storefronts' orders with the same id
        are two orders, and neither storefront can reach the other's."""
        return stable_id("order", platform_id, storefront_id, order_id)

    @staticmethod
    def legacy_id(platform_id: str, order_id: str) -> UUID:
        """The id of an order placed before ids were scoped to storefronts, when an order id
        was unique in its platform. Such an order keeps it: it is found under it, by the
        storefront that placed it only (see ``placed_by``)."""
        return stable_id("order", platform_id, order_id)

    @event("Placed")
    def __init__(
        self,
        platform_id: str,
        order_id: str,
        storefront_id: str,
        customer_id: str,
        seller_id: str,
        currency: str,
        lines: Sequence[LineItem],
        placed_at: datetime,
    ) -> None:
        self.platform_id = platform_id
        self.order_id = order_id
        self.storefront_id = storefront_id
        self.customer_id = customer_id
        self.seller_id = seller_id
        self.currency = currency
        self.lines: tuple[LineItem, ...] = tuple(lines)
        self.placed_at = placed_at
        self.status = PLACED
        self.paid_at: datetime | None = None
        self.completed_at: datetime | None = None
        self.cancelled_at: datetime | None = None
        self.payment_id = ""
        self.plan_version = 0
        self.upline_chain: tuple[str, ...] = ()
        self.shares: tuple[Share, ...] = ()
        self.payment_postings: tuple[Posting, ...] = ()
        self.reversed: list[int] = []
        self.refunded_by_line: dict[int, int] = {line.line_no: 0 for line in self.lines}
        self.refunds: dict[str, RefundRecord] = {}
        self.cases: dict[str, AfterSaleCase] = {}
        self.freeze_days = 0
        self.settled_at: datetime | None = None

    # --- what the business asks of an order -------------------------------------------

    @property
    def key(self) -> OrderKey:
        return OrderKey(self.storefront_id, self.order_id)

    @property
    def name(self) -> str:
        """How movements, statements and wallets name the order (see ``order_name``)."""
        return order_name(self.id, self.platform_id, self.storefront_id, self.order_id)

    def placed_by(self, storefront_id: str) -> bool:
        return self.storefront_id == storefront_id

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def refunded(self) -> int:
        return sum(self.refunded_by_line.values())

    @property
    def has_open_case(self) -> bool:
        return any(case.open for case in self.cases.values())

    @property
    def settled(self) -> bool:
        return self.settled_at is not None

    @property
    def bucket(self) -> str:
        """Where the order's shares are held: frozen until settlement, then available."""
        return AVAILABLE if self.settled else FROZEN

    def due_at(self) -> datetime | None:
        """When the freeze window ends: days after completion, by the plan of the payment."""
        if self.completed_at is None:
            return None
        return self.completed_at + timedelta(days=self.freeze_days)

    def is_due(self, at: datetime) -> bool:
        """Completed, unsettled, past its freeze window, and no after-sales case open."""
        due = self.due_at()
        return (self.status == COMPLETED and not self.settled and due is not None
                and at >= due and not self.has_open_case)

    def remaining(self) -> dict[str, int]:
        """What each account still holds of this order, after refunds."""
        held: dict[str, int] = {}
        for share, reversed_ in zip(self.shares, self.reversed, strict=True):
            held[share.account] = held.get(share.account, 0) + share.amount - reversed_
        return held

    def line(self, line_no: int) -> LineItem | None:
        return next((line for line in self.lines if line.line_no == line_no), None)

    @property
    def paid_by_line(self) -> dict[int, int]:
        return {line.line_no: line.amount for line in self.lines}

    # --- events: how each one changes the order (run again on every replay) -------------

    @event("Paid")
    def _paid(
        self,
        payment_id: str,
        paid_at: datetime,
        plan_version: int,
        freeze_days: int,
        upline_chain: Sequence[str],
        shares: Sequence[Share],
        postings: Sequence[Posting],
        backdated: bool = False,  # absent from events recorded before backfills had it
    ) -> None:
        self.status = PAID
        self.backdated = backdated
        self.payment_id = payment_id
        self.paid_at = paid_at
        self.plan_version = plan_version
        self.freeze_days = freeze_days
        self.upline_chain = tuple(upline_chain)
        self.shares = tuple(shares)
        self.payment_postings = tuple(postings)
        self.reversed = [0] * len(self.shares)

    @event("Completed")
    def _completed(self, completed_at: datetime) -> None:
        self.status = COMPLETED
        self.completed_at = completed_at

    @event("Cancelled")
    def _cancelled(self, reason: str, cancelled_at: datetime) -> None:
        self.status = CANCELLED
        self.cancelled_at = cancelled_at
        self.cancel_reason = reason

    @event("Refunded")
    def _refunded(self, refund: RefundRecord) -> None:
        """Each refunded line's shares stand reversed as ``reversed_so_far`` says for what
        has now been refunded of it: the computation that decided the refund's postings."""
        for refund_line in refund.lines:
            line = self.line(refund_line.line_no)
            assert line is not None
            refunded = self.refunded_by_line[line.line_no] + refund_line.amount
            self.refunded_by_line[line.line_no] = refunded
            indices = [i for i, s in enumerate(self.shares) if s.line_no == line.line_no]
            figures = reversed_so_far([self.shares[i] for i in indices], line.amount, refunded)
            for i, amount in zip(indices, figures, strict=True):
                self.reversed[i] = amount
        self.refunds[refund.refund_id] = refund

    @event("Settled")
    def _settled(self, settled_at: datetime, postings: Sequence[Posting]) -> None:
        self.settled_at = settled_at

    @event("AfterSaleOpened")
    def _after_sale_opened(self, case_id: str, line_no: int, reason: str) -> None:
        self.cases[case_id] = AfterSaleCase(case_id, line_no, reason)

    @event("AfterSaleClosed")
    def _after_sale_closed(self, case_id: str, resolution: str) -> None:
        case = self.cases[case_id]
        case.open = False
        case.resolution = resolution


def order_name(aggregate_id: UUID, platform_id: str, storefront_id: str, order_id: str) -> str:
    """An order's name where its storefront is not implied (movements, statements, wallet
    sources): ``<storefront>/<order id>``, unambiguous since storefront names hold no "/".

    An order placed before ids were scoped to storefronts (its aggregate id is the legacy
    one) keeps the name it was recorded with, its id alone, which was unique in its platform:
    replaying the log then draws the statements of the days closed before exactly as they
    were closed, digests included."""
    if aggregate_id == Order.legacy_id(platform_id, order_id):
        return order_id
    return f"{storefront_id}/{order_id}"
