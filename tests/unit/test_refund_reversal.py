"""The refund reversal, computed once (``split.reversed_so_far``): a refund's postings and the
order's figures replayed from its events come from the same arithmetic, to the fen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.money import AVAILABLE, CUSTOMER_FUNDS, FROZEN
from ledger.domain.order import Order
from ledger.domain.plan import DEFAULT_PLAN, CommissionPlan
from ledger.domain.refunds import RefundLine
from ledger.domain.split import LineItem, UplineMember, reversed_so_far, split_line
from tests.unit.deciding import complete, pay, refund, settle

T0 = datetime(2026, 11, 1, tzinfo=UTC)
CHAIN = [UplineMember("carol", ""), UplineMember("bob", ""), UplineMember("alice", "")]


def replayed(order: Order) -> Order:
    """The order rebuilt from the events it recorded, as a replay of the log rebuilds it."""
    rebuilt: Any = None
    for event in order.collect_events():
        rebuilt = event.mutate(rebuilt)
    assert isinstance(rebuilt, Order)
    return rebuilt


def figures(order: Order) -> tuple[Any, ...]:
    return (order.status, order.refunded_by_line, order.reversed, order.remaining(),
            sorted(order.refunds), order.settled)


def paid_order(lines: list[LineItem], plan: CommissionPlan = DEFAULT_PLAN) -> Order:
    order = Order("p", "O1", "shop", "c1", "carol", "CNY", lines, T0)
    pay(order, payment_id="w1", amount=order.total, plan=plan, chain=CHAIN, self_purchase=False,
              at=T0)
    return order


def balances(order: Order) -> dict[str, int]:
    """Each account's sum over the order's payment and refund postings, every bucket."""
    out: dict[str, int] = {}
    for p in order.payment_postings + tuple(p for r in order.refunds.values() for p in r.postings):
        out[p.account] = out.get(p.account, 0) + p.amount
    return {k: v for k, v in out.items() if k != CUSTOMER_FUNDS and v}


def test_the_worked_examples_refunds_reverse_to_the_fen_live_and_replayed() -> None:
    order = paid_order([LineItem(1, "tea", "drinks", 3, 3333, 2000, "S1")])
    refund(order, refund_id="r1", lines=[RefundLine(1, 3333)], reason="one unit", at=T0)
    assert dict(zip([s.account for s in order.shares], order.reversed, strict=True)) == {
        "supplier:S1": 2000, "reseller:carol": 533, "reseller:bob": 133, "platform": 667,
    }
    refund(order, refund_id="r2", lines=[RefundLine(1, 6666)], reason="the rest", at=T0)
    assert order.reversed == [s.amount for s in order.shares]
    assert figures(replayed(order)) == figures(order)
    assert balances(order) == {}


def test_reversed_so_far_leaves_the_platform_the_rest_and_reverses_all_at_the_end() -> None:
    shares = split_line(LineItem(1, "tea", "drinks", 3, 3333, 2000, "S1"), CHAIN[:2],
                        DEFAULT_PLAN)
    assert reversed_so_far(shares, 9999, 0) == [0, 0, 0, 0]
    assert reversed_so_far(shares, 9999, 3333) == [2000, 533, 133, 667]
    assert reversed_so_far(shares, 9999, 9999) == [s.amount for s in shares]


def test_a_clawback_after_settlement_replays_to_the_same_available_figures() -> None:
    order = paid_order([LineItem(1, "tea", "drinks", 3, 3333, 2000, "S1")])
    complete(order, at=T0)
    settle(order, at=T0 + timedelta(days=7))
    record = refund(order, refund_id="r1", lines=[RefundLine(1, 1)], reason="", at=T0)
    assert {p.bucket for p in record.postings if p.account != CUSTOMER_FUNDS} == {AVAILABLE}
    assert figures(replayed(order)) == figures(order)


line_items = st.lists(
    st.tuples(st.integers(1, 20), st.integers(0, 10**6), st.integers(0, 10**6)),
    min_size=1, max_size=4,
).map(lambda rows: [LineItem(n, f"sku{n}", "", q, sale, supply, "S1")
                    for n, (q, sale, supply) in enumerate(rows, start=1)])
plans = st.lists(st.integers(0, 3333), min_size=1, max_size=3).map(
    lambda rates: CommissionPlan(2, T0, tuple(rates)))


@settings(max_examples=300)
@given(lines=line_items, plan=plans, data=st.data())
def test_any_partial_refunds_replay_to_the_live_figures_and_postings(
    lines: list[LineItem], plan: CommissionPlan, data: st.DataObject
) -> None:
    """Live, each refund's postings are decided from ``reversed_so_far``; replayed, the
    Refunded events set the order's figures from it: after any sequence of partial refunds
    over any lines, both agree, and what each account holds is what its postings add up to."""
    order = paid_order(lines, plan)
    refundable = [line for line in lines if line.amount > 0]
    for n in range(data.draw(st.integers(0, 8))):
        if not refundable:
            break
        line = data.draw(st.sampled_from(refundable))
        left = line.amount - order.refunded_by_line[line.line_no]
        if left == 0:
            continue
        amount = data.draw(st.integers(1, left))
        refund(order, refund_id=f"r{n}", lines=[RefundLine(line.line_no, amount)], reason="",
                     at=T0)
        for share, reversed_ in zip(order.shares, order.reversed, strict=True):
            if share.role != "platform":
                assert 0 <= reversed_ <= share.amount, "a share reversed more than it earned"
    assert balances(order) == {k: v for k, v in order.remaining().items() if v}
    assert figures(replayed(order)) == figures(order)
    paid = order.paid_by_line
    for share, reversed_ in zip(order.shares, order.reversed, strict=True):
        if paid[share.line_no] and order.refunded_by_line[share.line_no] == paid[share.line_no]:
            assert reversed_ == share.amount, "a line refunded in full reverses every share"
    assert {p.bucket for p in order.payment_postings if p.account != CUSTOMER_FUNDS} <= {FROZEN}
