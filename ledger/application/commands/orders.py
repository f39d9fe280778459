"""A storefront's commands on its orders: placing, paying, completing, cancelling and
refunding them, after-sale cases, and the bulk import of past orders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import ClassVar

from ledger.application.commands.base import Command
from ledger.application.commands.checks import (
    IN_CALENDAR,
    MAX_LINES,
    MAX_QUANTITY,
    Violations,
    check_amount,
    check_id,
    check_text,
)
from ledger.domain.money import MAX_AMOUNT, is_currency
from ledger.domain.periods import FIRST_YEAR, LAST_YEAR


@dataclass(frozen=True)
class NewLine:
    sku: str
    category: str
    quantity: int
    unit_sale_price: int
    unit_supply_price: int
    supplier_id: str


@dataclass(frozen=True)
class PlaceOrder(Command):
    order_id: str
    customer_id: str
    reseller_id: str
    currency: str
    lines: tuple[NewLine, ...]

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "order_id", self.order_id)
        check_id(v, "customer_id", self.customer_id)
        check_id(v, "reseller_id", self.reseller_id, required=False)
        if not is_currency(self.currency):
            v.append(("currency", "must be an ISO 4217 code such as CNY"))
        if not 1 <= len(self.lines) <= MAX_LINES:
            v.append(("lines", f"an order has 1 to {MAX_LINES} lines"))
        for i, line in enumerate(self.lines):
            at = f"lines[{i}]"
            check_id(v, f"{at}.sku", line.sku)
            check_id(v, f"{at}.category", line.category, required=False)
            check_id(v, f"{at}.supplier_id", line.supplier_id)
            if not 1 <= line.quantity <= MAX_QUANTITY:
                v.append((f"{at}.quantity", f"must be 1 to {MAX_QUANTITY}"))
            check_amount(v, f"{at}.unit_sale_price", line.unit_sale_price)
            check_amount(v, f"{at}.unit_supply_price", line.unit_supply_price)
            amount = line.quantity * line.unit_sale_price
            if 0 < line.quantity <= MAX_QUANTITY and amount > MAX_AMOUNT:
                v.append((at, f"a line's amount must be at most {MAX_AMOUNT} minor units"))
        return v


@dataclass(frozen=True)
class ImportOrder(PlaceOrder):
    """A past order recorded in one step (bulk import): placed, paid in full with
    ``payment_id`` and, if ``completed``, completed. One idempotency key covers all three."""

    payment_id: str = ""
    completed: bool = False
    # For a backfill: when it happened. None: placed now, paid when placed, completed when
    # paid. Checked against the clock (none in the future) by the handler.
    placed_at: datetime | None = None
    paid_at: datetime | None = None
    completed_at: datetime | None = None
    added_later: ClassVar[tuple[str, ...]] = ("placed_at", "paid_at", "completed_at")

    def dated(self) -> list[tuple[str, datetime]]:
        """The steps given a time, in the order they happen."""
        return [(name, at) for name, at in (("placed_at", self.placed_at),
                                            ("paid_at", self.paid_at),
                                            ("completed_at", self.completed_at))
                if at is not None]

    def times(self, now: datetime) -> tuple[datetime, datetime, datetime]:
        """(placed, paid, completed): an unset placing is taken from the payment (else now),
        an unset payment from the placing, an unset completion from the payment. With the
        given times in order (``violations``), the three are in order too."""
        placed = self.placed_at or self.paid_at or now
        paid = self.paid_at or placed
        return placed, paid, self.completed_at or paid

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "payment_id", self.payment_id)
        if self.completed_at is not None and not self.completed:
            v.append(("completed_at", "is only for a completed order"))
        if self.completed_at is not None and self.paid_at is None and self.placed_at is None:
            # Else the payment would be dated now, after the completion: the freeze window
            # would run from before the money came in.
            v.append(("completed_at", "needs paid_at (or placed_at): a backfilled completion "
                                      "dates its payment too"))
        v.extend((name, IN_CALENDAR) for name, at in self.dated()
                 if not FIRST_YEAR <= at.year <= LAST_YEAR)
        for (before, earlier), (name, later) in pairwise(self.dated()):
            if later < earlier:
                v.append((name, f"must not be before {before}"))
        return v


@dataclass(frozen=True)
class PayOrder(Command):
    order_id: str
    payment_id: str
    amount: int

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "order_id", self.order_id)
        check_id(v, "payment_id", self.payment_id)
        check_amount(v, "amount", self.amount)
        return v


@dataclass(frozen=True)
class CompleteOrder(Command):
    order_id: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "order_id", self.order_id)
        return v


@dataclass(frozen=True)
class CancelOrder(Command):
    order_id: str
    reason: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "order_id", self.order_id)
        check_text(v, "reason", self.reason)
        return v


@dataclass(frozen=True)
class RefundLineRequest:
    line_no: int
    amount: int


@dataclass(frozen=True)
class RefundOrder(Command):
    order_id: str
    refund_id: str
    lines: tuple[RefundLineRequest, ...]
    reason: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "order_id", self.order_id)
        check_id(v, "refund_id", self.refund_id)
        check_text(v, "reason", self.reason)
        if not 1 <= len(self.lines) <= MAX_LINES:
            v.append(("lines", f"a refund names 1 to {MAX_LINES} lines"))
        for i, line in enumerate(self.lines):
            if line.line_no < 1:
                v.append((f"lines[{i}].line_no", "must be 1 or more"))
            check_amount(v, f"lines[{i}].amount", line.amount, positive=True)
        return v


@dataclass(frozen=True)
class OpenAfterSale(Command):
    order_id: str
    case_id: str
    line_no: int
    reason: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "order_id", self.order_id)
        check_id(v, "case_id", self.case_id)
        if self.line_no < 1:
            v.append(("line_no", "must be 1 or more"))
        check_text(v, "reason", self.reason)
        return v


@dataclass(frozen=True)
class CloseAfterSale(Command):
    order_id: str
    case_id: str
    resolution: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "order_id", self.order_id)
        check_id(v, "case_id", self.case_id)
        check_text(v, "resolution", self.resolution)
        return v
