"""Requests and answers in the currency's unit: the SDK's Decimal edge over the wire's
integer minor units (money.py does the conversion, refusing sub-unit precision).

The sync and asyncio clients both build their requests here, so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from ledger.clients.money import to_decimal, to_minor

from ledger.v1 import common_pb2, report_pb2, storefront_pb2

Amount = Decimal | int | str  # in the currency's unit: Decimal("15.99"), 500, "33.33"


@dataclass(frozen=True)
class Line:
    """One order line: ``quantity`` units at ``unit_price`` each, of which the supplier is
    owed ``unit_supply_price`` (both in the order's currency unit: Decimal("33.33"))."""

    sku: str
    quantity: int
    unit_price: Amount
    unit_supply_price: Amount
    supplier_id: str
    category: str = "general"

    def message(self, currency: str) -> common_pb2.OrderLine:
        return common_pb2.OrderLine(
            sku=self.sku,
            category=self.category,
            quantity=self.quantity,
            unit_sale_price=to_minor(self.unit_price, currency),
            unit_supply_price=to_minor(self.unit_supply_price, currency),
            supplier_id=self.supplier_id,
        )


# The requests the storefront's Decimal methods send; ``idempotency_key`` empty: the SDK
# makes one for the call (calls.py).


def place_order(
    order_id: str,
    customer_id: str,
    currency: str,
    lines: Sequence[Line],
    reseller_id: str,
    idempotency_key: str,
) -> storefront_pb2.PlaceOrderRequest:
    return storefront_pb2.PlaceOrderRequest(
        idempotency_key=idempotency_key,
        order_id=order_id,
        customer_id=customer_id,
        reseller_id=reseller_id,
        currency=currency,
        lines=[line.message(currency) for line in lines],
    )


def pay_order(
    order_id: str, payment_id: str, amount: Amount, currency: str, idempotency_key: str
) -> storefront_pb2.PayOrderRequest:
    return storefront_pb2.PayOrderRequest(
        idempotency_key=idempotency_key,
        order_id=order_id,
        payment_id=payment_id,
        amount=to_minor(amount, currency),
    )


def refund_order(
    order_id: str,
    refund_id: str,
    lines: Mapping[int, Amount],
    currency: str,
    reason: str,
    idempotency_key: str,
) -> storefront_pb2.RefundOrderRequest:
    """``lines``: line number (1, 2…) → amount refunded on it now."""
    return storefront_pb2.RefundOrderRequest(
        idempotency_key=idempotency_key,
        order_id=order_id,
        refund_id=refund_id,
        reason=reason,
        lines=[
            common_pb2.RefundLine(line_no=n, amount=to_minor(amount, currency))
            for n, amount in lines.items()
        ],
    )


def request_withdrawal(
    reseller_id: str, amount: Amount, currency: str, idempotency_key: str
) -> storefront_pb2.RequestWithdrawalRequest:
    return storefront_pb2.RequestWithdrawalRequest(
        idempotency_key=idempotency_key,
        reseller_id=reseller_id,
        currency=currency,
        amount=to_minor(amount, currency),
    )


@dataclass(frozen=True)
class Balance:
    """An account's balance in one currency, in that currency's unit."""

    account: str
    currency: str
    frozen: Decimal
    available: Decimal
    in_flight: Decimal
    paid_out: Decimal
    debt: Decimal

    @classmethod
    def of(cls, balance: report_pb2.AccountBalance) -> Balance:
        def unit(minor: int) -> Decimal:
            return to_decimal(minor, balance.currency)

        return cls(
            balance.account,
            balance.currency,
            unit(balance.frozen),
            unit(balance.available),
            unit(balance.in_flight),
            unit(balance.paid_out),
            unit(balance.debt),
        )
