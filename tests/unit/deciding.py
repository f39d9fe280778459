"""An order's commands as the tests ask them: each decided (order_decisions.py), then its
events applied (decisions.evolve), as the handlers do, on an order of the test's own."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ledger.domain.decisions import evolve_all
from ledger.domain.money import Posting
from ledger.domain.order import Order
from ledger.domain.order_decisions import (
    Complete,
    Pay,
    Refund,
    Refunded,
    Settle,
    decide_complete,
    decide_pay,
    decide_refund,
    decide_settle,
    settled_postings,
)
from ledger.domain.plan import CommissionPlan
from ledger.domain.refunds import RefundLine, RefundRecord
from ledger.domain.split import UplineMember


def pay(order: Order, *, payment_id: str, amount: int, plan: CommissionPlan,
        chain: Sequence[UplineMember], self_purchase: bool, at: datetime) -> Order:
    return evolve_all(order, decide_pay(order, Pay(payment_id, amount, plan, tuple(chain),
                                                   self_purchase, at)))


def complete(order: Order, *, at: datetime) -> Order:
    return evolve_all(order, decide_complete(order, Complete(at)))


def settle(order: Order, *, at: datetime) -> tuple[Posting, ...]:
    decided = decide_settle(order, Settle(at))
    evolve_all(order, decided)
    return settled_postings(decided)


def refund(order: Order, *, refund_id: str, lines: Sequence[RefundLine], reason: str,
           at: datetime) -> RefundRecord:
    [refunded] = decide_refund(order, Refund(refund_id, tuple(lines), reason, at))
    evolve_all(order, [refunded])
    assert isinstance(refunded, Refunded)
    return refunded.refund
