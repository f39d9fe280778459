"""The money rules of DOMAIN.md, on the pure split and refund arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.errors import InvalidInput
from ledger.domain.money import CUSTOMER_FUNDS, is_currency, minor_exponent
from ledger.domain.order import Order, RefundLine
from ledger.domain.plan import (
    CATEGORY,
    DEFAULT_PLAN,
    PRODUCT,
    RANK,
    CommissionPlan,
    RateOverride,
    validate_plan,
)
from ledger.domain.split import (
    PLATFORM_ROLE,
    LineItem,
    UplineMember,
    reversals_for_refund,
    split_line,
)
from tests.unit.deciding import pay, refund

T0 = datetime(2026, 11, 1, tzinfo=UTC)
CHAIN = [UplineMember("carol", ""), UplineMember("bob", ""), UplineMember("alice", "")]


def worked_line() -> LineItem:
    return LineItem(1, "tea", "drinks", 3, 3333, 2000, "S1")


def amounts(shares):  # type: ignore[no-untyped-def]
    return {s.account: s.amount for s in shares}


def test_worked_example_split_to_the_fen() -> None:
    shares = split_line(worked_line(), CHAIN, DEFAULT_PLAN)
    assert amounts(shares) == {
        "supplier:S1": 6000, "reseller:carol": 1599, "reseller:bob": 399, "platform": 2001,
    }


def test_worked_example_refunds_to_the_fen() -> None:
    shares = split_line(worked_line(), CHAIN, DEFAULT_PLAN)
    first = reversals_for_refund(shares, paid=9999, refunded_before=0, refund=3333)
    assert dict(zip([s.account for s in shares], first, strict=True)) == {
        "supplier:S1": 2000, "reseller:carol": 533, "reseller:bob": 133, "platform": 667,
    }
    second = reversals_for_refund(shares, paid=9999, refunded_before=3333, refund=6666)
    assert dict(zip([s.account for s in shares], second, strict=True)) == {
        "supplier:S1": 4000, "reseller:carol": 1066, "reseller:bob": 266, "platform": 1334,
    }
    assert [a + b for a, b in zip(first, second, strict=True)] == [s.amount for s in shares]


def test_worked_example_postings_on_the_order() -> None:
    order = Order("p", "O1", "shop", "c1", "carol", "CNY", [worked_line()], T0)
    pay(order, payment_id="pay", amount=9999, plan=DEFAULT_PLAN, chain=CHAIN[:2],
              self_purchase=False, at=T0)
    assert {(p.account, p.amount) for p in order.payment_postings} == {
        (CUSTOMER_FUNDS, -9999), ("supplier:S1", 6000), ("reseller:carol", 1599),
        ("reseller:bob", 399), ("platform", 2001),
    }
    r1 = refund(order, refund_id="r1", lines=[RefundLine(1, 3333)], reason="", at=T0)
    assert {(p.account, p.amount) for p in r1.postings} == {
        (CUSTOMER_FUNDS, 3333), ("supplier:S1", -2000), ("reseller:carol", -533),
        ("reseller:bob", -133), ("platform", -667),
    }
    r2 = refund(order, refund_id="r2", lines=[RefundLine(1, 6666)], reason="", at=T0)
    assert {(p.account, p.amount) for p in r2.postings} == {
        (CUSTOMER_FUNDS, 6666), ("supplier:S1", -4000), ("reseller:carol", -1066),
        ("reseller:bob", -266), ("platform", -1334),
    }
    assert all(r == s.amount for r, s in zip(order.reversed, order.shares, strict=True))


def test_line_sold_at_supply_price_pays_no_commission() -> None:
    shares = split_line(LineItem(1, "x", "", 2, 500, 500, "S1"), CHAIN, DEFAULT_PLAN)
    assert amounts(shares) == {"supplier:S1": 1000, "platform": 0}


def test_line_sold_below_supply_price_platform_absorbs_the_loss() -> None:
    shares = split_line(LineItem(1, "x", "", 2, 400, 500, "S1"), CHAIN, DEFAULT_PLAN)
    assert amounts(shares) == {"supplier:S1": 1000, "platform": -200}


def test_no_seller_all_margin_to_the_platform() -> None:
    shares = split_line(worked_line(), [], DEFAULT_PLAN)
    assert amounts(shares) == {"supplier:S1": 6000, "platform": 3999}


def test_self_purchase_earns_commission_by_default_and_can_be_excluded() -> None:
    line = worked_line()
    earned = amounts(split_line(line, CHAIN, DEFAULT_PLAN, self_purchase=True))
    assert earned["reseller:carol"] == 1599
    strict = CommissionPlan(2, T0, (4000, 1000), exclude_self_purchase=True)
    assert "reseller:carol" not in amounts(split_line(line, CHAIN, strict, self_purchase=True))


def test_override_precedence_product_category_rank_default() -> None:
    plan = CommissionPlan(2, T0, (4000, 1000), overrides=(
        RateOverride(PRODUCT, "tea", 1, 1000),
        RateOverride(CATEGORY, "drinks", 1, 2000),
        RateOverride(RANK, "shop-owner", 1, 5000),
        RateOverride(CATEGORY, "drinks", 2, 500),
    ))
    owner = UplineMember("carol", "shop-owner")
    assert plan.rate_bps(1, sku="tea", category="drinks", rank="shop-owner") == 1000
    assert plan.rate_bps(1, sku="coffee", category="drinks", rank="shop-owner") == 2000
    assert plan.rate_bps(1, sku="coffee", category="food", rank="shop-owner") == 5000
    assert plan.rate_bps(1, sku="coffee", category="food", rank="") == 4000
    shares = split_line(LineItem(1, "cake", "food", 1, 2000, 1000, "S1"), [owner], plan)
    assert amounts(shares)["reseller:carol"] == 500


@pytest.mark.parametrize("plan, field", [
    (CommissionPlan(2, T0, (1000, 1000, 1000, 1000)), "plan.level_rates_bps"),
    (CommissionPlan(2, T0, ()), "plan.level_rates_bps"),
    (CommissionPlan(2, T0, (-1,)), "plan.level_rates_bps[0]"),
    (CommissionPlan(2, T0, (6000, 5000)), "plan"),
    (CommissionPlan(2, T0, (4000, 1000), overrides=(RateOverride(RANK, "vip", 1, 9500),)), "plan"),
    (CommissionPlan(2, T0, (4000,), overrides=(RateOverride(RANK, "vip", 2, 10),)),
     "plan.overrides[0].level"),
    (CommissionPlan(2, T0, (4000,), freeze_days=-1), "plan.freeze_days"),
])
def test_plan_rejected(plan: CommissionPlan, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_plan(plan)
    assert field in [f for f, _ in refused.value.violations]


def test_plan_total_check_considers_each_line_context_separately() -> None:
    # 90% on level 1 for tea, 90% on level 2 for coffee: no line ever pays more than 100%.
    plan = CommissionPlan(2, T0, (1000, 0), overrides=(
        RateOverride(PRODUCT, "tea", 1, 9000), RateOverride(PRODUCT, "coffee", 2, 9000)))
    validate_plan(plan)


def test_currencies_are_iso_4217() -> None:
    assert is_currency("CNY") and minor_exponent("CNY") == 2 and minor_exponent("JPY") == 0
    assert not is_currency("cny") and not is_currency("XYZ") and not is_currency("")


# --- properties ---------------------------------------------------------------------------

rates = st.integers(0, 5000)
plans = st.builds(
    lambda r: CommissionPlan(2, T0, tuple(r)),
    st.lists(st.integers(0, 3333), min_size=1, max_size=3),
)
lines = st.builds(
    lambda qty, sale, supply: LineItem(1, "sku", "cat", qty, sale, supply, "S1"),
    st.integers(1, 50), st.integers(0, 10**7), st.integers(0, 10**7),
)


@st.composite
def refund_sequences(draw: st.DrawFn, paid: int) -> list[int]:
    """Refund amounts that add up to at most ``paid``; often exactly ``paid``."""
    left, out = paid, []
    while left > 0 and len(out) < 8:
        amount = draw(st.integers(1, left))
        out.append(amount)
        left -= amount
    if left and draw(st.booleans()):
        out.append(left)
    return out


@given(line=lines, plan=plans, chain_len=st.integers(0, 3), data=st.data())
def test_split_and_refunds_conserve_money(
    line: LineItem, plan: CommissionPlan, chain_len: int, data: st.DataObject
) -> None:
    shares = split_line(line, CHAIN[:chain_len], plan)
    assert sum(s.amount for s in shares) == line.amount
    commissions = sum(s.amount for s in shares if s.role == "commission")
    assert commissions <= max(line.margin, 0)
    if line.amount == 0:
        return
    reversed_ = [0] * len(shares)
    refunded = 0
    for refunding in data.draw(refund_sequences(line.amount)):
        deltas = reversals_for_refund(shares, line.amount, refunded, refunding)
        assert sum(deltas) == refunding
        refunded += refunding
        for i, (share, delta) in enumerate(zip(shares, deltas, strict=True)):
            reversed_[i] += delta
            if share.role != PLATFORM_ROLE:
                assert 0 <= reversed_[i] <= share.amount, "a share reversed more than it got"
    if refunded == line.amount:
        assert reversed_ == [s.amount for s in shares], "a full refund returns every share"


@given(
    line=lines.filter(lambda x: x.amount > 0), plan=plans, data=st.data(),
)
def test_order_postings_sum_to_zero_through_any_refund_sequence(
    line: LineItem, plan: CommissionPlan, data: st.DataObject
) -> None:
    order = Order("p", "O", "shop", "c", "carol", "CNY", [line], T0)
    pay(order, payment_id="p", amount=line.amount, plan=plan, chain=CHAIN, self_purchase=False,
              at=T0)
    assert sum(p.amount for p in order.payment_postings) == 0
    for n, amount in enumerate(data.draw(refund_sequences(line.amount))):
        record = refund(order, refund_id=f"r{n}", lines=[RefundLine(1, amount)], reason="", at=T0)
        assert sum(p.amount for p in record.postings) == 0
    balances: dict[str, int] = {}
    for p in order.payment_postings + tuple(
        p for r in order.refunds.values() for p in r.postings
    ):
        balances[p.account] = balances.get(p.account, 0) + p.amount
    if order.refunded == line.amount:
        assert all(v == 0 for v in balances.values())
