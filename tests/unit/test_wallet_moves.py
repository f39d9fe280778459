"""Which wallets a posting moves: money into or out of the available bucket of a reseller or
a supplier. Frozen money, the platform's share, clearing and tax move no wallet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.decisions import evolve_all
from ledger.domain.money import (
    AVAILABLE,
    CLEARING,
    CUSTOMER_FUNDS,
    FROZEN,
    PLATFORM,
    TAX_PAYABLE,
    Posting,
)
from ledger.domain.order import Order
from ledger.domain.plan import DEFAULT_PLAN
from ledger.domain.refunds import RefundLine
from ledger.domain.split import LineItem, UplineMember
from ledger.domain.wallet import Wallet, WalletMove, decide_move, wallet_moves
from tests.unit.deciding import complete, pay, refund, settle

T0 = datetime(2026, 11, 1, tzinfo=UTC)
ACCOUNTS = ["reseller:carol", "reseller:bob", "supplier:S1", PLATFORM, CUSTOMER_FUNDS,
            TAX_PAYABLE]
postings = st.lists(st.builds(
    Posting, st.sampled_from(ACCOUNTS), st.sampled_from([FROZEN, AVAILABLE, CLEARING]),
    st.sampled_from(["CNY", "USD"]), st.integers(-10**9, 10**9)), max_size=30)


def settled_worked_example() -> Order:
    order = Order("p", "O1", "shop", "c1", "carol", "CNY",
                  [LineItem(1, "tea", "drinks", 3, 3333, 2000, "S1")], T0)
    pay(order, payment_id="w1", amount=9999, plan=DEFAULT_PLAN,
              chain=[UplineMember("carol", ""), UplineMember("bob", "")], self_purchase=False,
              at=T0)
    complete(order, at=T0)
    return order


def test_a_settlement_credits_the_resellers_and_the_supplier_not_the_platform() -> None:
    order = settled_worked_example()
    postings = settle(order, at=T0 + timedelta(days=7))
    assert wallet_moves(postings) == [
        WalletMove("supplier:S1", "CNY", 6000), WalletMove("reseller:carol", "CNY", 1599),
        WalletMove("reseller:bob", "CNY", 399)]


def test_a_refund_before_settlement_moves_no_wallet() -> None:
    order = settled_worked_example()
    record = refund(order, refund_id="r1", lines=[RefundLine(1, 3333)], reason="", at=T0)
    assert wallet_moves(record.postings) == []


def test_a_clawback_after_settlement_debits_the_wallets_it_takes_back_from() -> None:
    order = settled_worked_example()
    settle(order, at=T0 + timedelta(days=7))
    record = refund(order, refund_id="r1", lines=[RefundLine(1, 3333)], reason="", at=T0)
    assert wallet_moves(record.postings) == [
        WalletMove("supplier:S1", "CNY", -2000), WalletMove("reseller:carol", "CNY", -533),
        WalletMove("reseller:bob", "CNY", -133)]


@given(postings=postings)
def test_wallets_follow_exactly_the_available_money_of_resellers_and_suppliers(
    postings: list[Posting],
) -> None:
    wallets: dict[tuple[str, str], Wallet] = {}
    for move in wallet_moves(postings):
        key = (move.account, move.currency)
        found = wallets.setdefault(key, Wallet("p", *key))
        evolve_all(found, decide_move(found, move, "test"))
    expected: dict[tuple[str, str], int] = {}
    for p in postings:
        if p.bucket == AVAILABLE and p.account.startswith(("reseller:", "supplier:")):
            expected[(p.account, p.currency)] = expected.get((p.account, p.currency), 0) + p.amount
    assert {k: w.available for k, w in wallets.items()} == expected
