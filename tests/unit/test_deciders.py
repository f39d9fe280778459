"""The pure deciders, driven directly (no store, no application): DOMAIN.md's worked example
to the fen, and the money properties over random sequences of an order's commands, checked
after every step. Each step is decided on the state as it stands, then evolved: a refusal
must leave the state exactly as it was, and a decision must change nothing by itself."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.decisions import Event, create, evolve_all
from ledger.domain.errors import LedgerError, RuleViolation
from ledger.domain.money import AVAILABLE, CUSTOMER_FUNDS, FROZEN, Posting
from ledger.domain.order import Order
from ledger.domain.order_decisions import (
    COMPLETED,
    Cancel,
    CloseCase,
    Complete,
    OpenCase,
    Paid,
    Pay,
    Place,
    Refund,
    Refunded,
    Settle,
    Settled,
    decide_cancel,
    decide_close_case,
    decide_complete,
    decide_open_case,
    decide_pay,
    decide_place,
    decide_refund,
    decide_settle,
)
from ledger.domain.payout import (
    Approve,
    MarkFailed,
    MarkPaid,
    Payout,
    Reject,
    decide_approve,
    decide_mark_failed,
    decide_mark_paid,
    decide_reject,
)
from ledger.domain.plan import DEFAULT_PLAN, CommissionPlan
from ledger.domain.refunds import RefundLine
from ledger.domain.split import PLATFORM_ROLE, LineItem, UplineMember
from ledger.domain.team import CustomerBinding, Reseller
from ledger.domain.team_decisions import (
    Bind,
    Enrol,
    Move,
    decide_bind,
    decide_enrol,
    decide_move,
)
from ledger.domain.wallet import (
    Release,
    Reserve,
    Wallet,
    WalletMove,
    check_payable,
    decide_release,
    decide_reserve,
    wallet_moves,
)
from ledger.domain.wallet import decide_move as decide_wallet_move

T0 = datetime(2026, 11, 1, tzinfo=UTC)
TEA = LineItem(1, "tea", "drinks", 3, 3333, 2000, "S1")


def state(aggregate: Any) -> dict[str, Any]:
    """Everything the aggregate holds, its events not yet saved included."""
    return copy.deepcopy(vars(aggregate))


def decided(aggregate: Any, decide: Any, command: Any) -> list[Event]:
    """Decides, and checks that deciding changed nothing, accepted or refused."""
    before = state(aggregate)
    try:
        return list(decide(aggregate, command))
    finally:
        assert state(aggregate) == before, f"{decide.__name__} changed the state"


def enrol(reseller_id: str, sponsor: Reseller | None = None) -> Reseller:
    return create(Reseller, *decide_enrol(None, sponsor, Enrol(
        "p", reseller_id, sponsor.reseller_id if sponsor else "", "", None, T0)))


def test_the_worked_example_to_the_fen_through_decide_and_evolve() -> None:
    alice = enrol("alice")
    bob = enrol("bob", alice)
    carol = enrol("carol", bob)
    [bound] = decide_bind(None, Bind("p", "c1", "carol", T0))
    binding = create(CustomerBinding, bound)
    assert decide_bind(binding, Bind("p", "c1", "carol", T0)) == []  # the first stands

    order = create(Order, *decide_place(None, Place("p", "O1", "shop", "c1", "carol", "CNY",
                                                    (TEA,), T0)))
    chain = (UplineMember("carol", carol.rank), UplineMember("bob", bob.rank),
             UplineMember("alice", alice.rank))
    evolve_all(order, decided(order, decide_pay,
                              Pay("w1", 9999, DEFAULT_PLAN, chain, False, T0)))
    assert {(p.account, p.bucket, p.amount) for p in order.payment_postings} == {
        (CUSTOMER_FUNDS, "clearing", -9999), ("supplier:S1", FROZEN, 6000),
        ("reseller:carol", FROZEN, 1599), ("reseller:bob", FROZEN, 399),
        ("platform", FROZEN, 2001)}

    [first] = decided(order, decide_refund, Refund("r1", (RefundLine(1, 3333),), "", T0))
    assert isinstance(first, Refunded)
    assert {p.account: -p.amount for p in first.refund.postings} == {
        CUSTOMER_FUNDS: -3333, "supplier:S1": 2000, "reseller:carol": 533,
        "reseller:bob": 133, "platform": 667}
    evolve_all(order, [first])
    [second] = decided(order, decide_refund, Refund("r2", (RefundLine(1, 6666),), "", T0))
    assert isinstance(second, Refunded)
    assert {p.account: -p.amount for p in second.refund.postings} == {
        CUSTOMER_FUNDS: -6666, "supplier:S1": 4000, "reseller:carol": 1066,
        "reseller:bob": 266, "platform": 1334}
    evolve_all(order, [second])
    assert order.remaining() == {"supplier:S1": 0, "reseller:carol": 0, "reseller:bob": 0,
                                 "platform": 0}  # every share is back to zero
    with pytest.raises(RuleViolation) as raised:
        decided(order, decide_refund, Refund("r3", (RefundLine(1, 1),), "", T0))
    assert raised.value.reason == "REFUND_EXCEEDS_PAID"


def test_a_backdated_payment_is_not_dated_before_its_seller_enrolled() -> None:
    order = create(Order, *decide_place(None, Place("p", "O1", "shop", "c1", "carol", "CNY",
                                                    (TEA,), T0)))
    chain = (UplineMember("carol", ""),)
    enrolled = T0 + timedelta(hours=1)
    with pytest.raises(RuleViolation) as raised:
        decided(order, decide_pay, Pay("w1", 9999, DEFAULT_PLAN, chain, False, T0,
                                       backdated=True, seller_enrolled_at=enrolled))
    assert raised.value.reason == "PAID_BEFORE_SELLER_ENROLLED"
    assert enrolled.isoformat() in raised.value.message
    # Recorded now (not backdated), the payment comes after the enrolment in the log.
    assert decided(order, decide_pay, Pay("w1", 9999, DEFAULT_PLAN, chain, False, T0,
                                          seller_enrolled_at=enrolled))


def test_a_move_that_would_loop_the_tree_is_refused_and_changes_nothing() -> None:
    alice = enrol("alice")
    bob = enrol("bob", alice)
    sponsors = {"alice": "", "bob": "alice"}
    with pytest.raises(RuleViolation) as raised:
        decided(alice, lambda a, cmd: decide_move(a, cmd, sponsors.__getitem__),
                Move("bob", "reorganised", T0))
    assert raised.value.reason == "SPONSOR_CYCLE"
    [moved] = decide_move(bob, Move("", "on their own", T0), sponsors.__getitem__)
    evolve_all(bob, [moved])
    assert (bob.sponsor_id, bob.sponsor_at(T0 - timedelta(1))) == ("", "alice")


# --- the money properties, over any sequence of an order's commands --------------------------

PLANS = st.builds(
    lambda rates, freeze: CommissionPlan(2, T0, tuple(rates), freeze_days=freeze),
    st.lists(st.integers(0, 3333), min_size=1, max_size=3), st.integers(0, 10))
LINES = st.lists(st.tuples(st.integers(1, 5), st.integers(0, 10**5), st.integers(0, 10**5)),
                 min_size=1, max_size=3).map(
    lambda rows: tuple(LineItem(n, f"sku{n}", "", q, sale, min(supply, sale), "S1")
                       for n, (q, sale, supply) in enumerate(rows, start=1)))
CHAINS = st.lists(st.sampled_from(["carol", "bob", "alice", "dave"]), max_size=3,
                  unique=True).map(lambda ids: tuple(UplineMember(i, "") for i in ids))
STEPS = st.sampled_from(["pay", "pay_wrong", "complete", "cancel", "refund", "settle_early",
                         "settle", "open_case", "close_case"])


class Books:
    """What the decided events moved: every posting, and the wallets they credit."""

    def __init__(self) -> None:
        self.postings: list[Posting] = []
        self.wallets: dict[tuple[str, str], Wallet] = {}
        self.settlements = 0

    def take(self, events: list[Event], order: Order) -> None:
        for event in events:
            moved: tuple[Posting, ...] = ()
            if isinstance(event, Refunded):
                moved = event.refund.postings
            elif isinstance(event, Settled):
                moved, self.settlements = event.postings, self.settlements + 1
            elif isinstance(event, Paid):
                moved = event.postings
            self.postings += moved
            for move in wallet_moves(moved):
                key = (move.account, move.currency)
                found = self.wallets.setdefault(key, Wallet("p", *key))
                evolve_all(found, decide_wallet_move(found, move, order.name))


def command(step: str, order: Order, data: st.DataObject, n: int, at: datetime) -> Any:
    """The decider and the command a step asks, drawn against the order as it stands."""
    if step in ("pay", "pay_wrong"):
        amount = order.total + (data.draw(st.integers(1, 100)) if step == "pay_wrong" else 0)
        return decide_pay, Pay(f"w{n}", amount, data.draw(PLANS), data.draw(CHAINS), False, at)
    if step == "complete":
        return decide_complete, Complete(at)
    if step == "cancel":
        return decide_cancel, Cancel("changed their mind", at)
    if step == "refund":
        line = data.draw(st.sampled_from(order.lines))
        left = line.amount - order.refunded_by_line[line.line_no]
        amount = data.draw(st.integers(1, max(1, left + 1)))  # sometimes one too many
        return decide_refund, Refund(f"r{n}", (RefundLine(line.line_no, amount),), "", at)
    if step in ("settle", "settle_early"):
        due = order.due_at() or at
        return decide_settle, Settle(due if step == "settle" else due - timedelta(seconds=1))
    if step == "open_case":
        return decide_open_case, OpenCase(f"k{n}", data.draw(st.integers(1, 4)), "broken")
    case = data.draw(st.sampled_from(sorted(order.cases) or ["none"]))
    return decide_close_case, CloseCase(case, "resolved")


def check_the_money(order: Order, books: Books) -> None:
    totals: dict[str, int] = {}
    for p in books.postings:
        totals[p.currency] = totals.get(p.currency, 0) + p.amount
    assert all(v == 0 for v in totals.values()), "postings do not sum to zero"
    for share, reversed_ in zip(order.shares, order.reversed, strict=True):
        if share.role != PLATFORM_ROLE:
            assert 0 <= reversed_ <= share.amount, "a share reversed more than it earned"
    assert books.settlements <= 1, "an order settled twice"
    available: dict[tuple[str, str], int] = {}
    for p in books.postings:
        if p.bucket == AVAILABLE and p.account.startswith(("reseller:", "supplier:")):
            key = (p.account, p.currency)
            available[key] = available.get(key, 0) + p.amount
    assert {k: w.available for k, w in books.wallets.items()} == available
    held: dict[str, int] = {}
    for p in books.postings:
        if p.account != CUSTOMER_FUNDS:
            held[p.account] = held.get(p.account, 0) + p.amount
    assert {k: v for k, v in held.items() if v} == {
        k: v for k, v in order.remaining().items() if v}


def figures(order: Order) -> tuple[Any, ...]:
    return (order.status, order.refunded_by_line, order.reversed, order.remaining(),
            sorted(order.refunds), order.settled, {k: c.open for k, c in order.cases.items()})


@settings(max_examples=400, deadline=None)
@given(lines=LINES, steps=st.lists(STEPS, max_size=14), data=st.data())
def test_any_sequence_of_commands_keeps_the_money_whole(
    lines: tuple[LineItem, ...], steps: list[str], data: st.DataObject
) -> None:
    """After every step: postings sum to zero, no share reverses more than it earned, no order
    settles twice, the wallets hold exactly the available money the postings moved, and what
    each account holds of the order is what its postings add up to. A refused step leaves the
    order exactly as it was; the order replayed from its events equals the order live."""
    order = create(Order, *decide_place(None, Place("p", "O", "shop", "c", "carol", "CNY",
                                                    lines, T0)))
    books = Books()
    at = T0
    for n, step in enumerate(steps):
        at += timedelta(hours=data.draw(st.integers(0, 24 * 12)))
        decide, cmd = command(step, order, data, n, at)
        before = state(order)
        try:
            events = decided(order, decide, cmd)
        except LedgerError:
            assert state(order) == before
            continue
        evolve_all(order, events)
        books.take(events, order)
        check_the_money(order, books)
    if order.status == COMPLETED and not order.settled and not order.has_open_case:
        events = decided(order, decide_settle, Settle(order.due_at() or at))
        evolve_all(order, events)
        books.take(events, order)
        check_the_money(order, books)
    replayed = None
    for event in order.collect_events():
        replayed = event.mutate(replayed)
    assert isinstance(replayed, Order) and figures(replayed) == figures(order)


# --- a wallet and its payouts ----------------------------------------------------------------

WALLET_STEPS = st.lists(st.tuples(
    st.sampled_from(["credit", "clawback", "request", "approve", "reject", "paid", "failed"]),
    st.integers(0, 50_000), st.integers(0, 7)), max_size=25)


@settings(max_examples=300, deadline=None)
@given(steps=WALLET_STEPS)
def test_no_payout_is_above_what_was_available_and_every_fen_is_accounted_for(
    steps: list[tuple[str, int, int]],
) -> None:
    """Any sequence of settlements, clawbacks and payout steps on one reseller's wallet:
    a payout is reserved only from what is available and never while the wallet owes, one
    is approved only while it owes nothing, and available + in flight + paid out is always
    what settlements credited less what clawbacks took back. A refused step changes nothing."""
    wallet = Wallet("p", "reseller:dana", "CNY")
    payouts: list[Payout] = []
    moved = 0
    for n, (step, amount, which) in enumerate(steps):
        at = T0 + timedelta(minutes=n)
        if step in ("credit", "clawback"):
            sign = 1 if step == "credit" else -1
            move = WalletMove(wallet.account, wallet.currency, sign * amount)
            evolve_all(wallet, decided(wallet, lambda w, m: decide_wallet_move(w, m, "o"), move))
            moved += sign * amount
        elif step == "request":
            available, owed = wallet.available, wallet.debt
            try:
                events = decided(wallet, decide_reserve, Reserve(f"PO{n}", amount, 100))
            except RuleViolation:
                assert owed or amount < 100 or amount > available
                continue
            assert not owed and 100 <= amount <= available
            evolve_all(wallet, events)
            postings = Payout.request_postings(wallet.account, wallet.currency, amount)
            payouts.append(Payout("p", f"PO{n}", wallet.account, wallet.currency, amount,
                                  "shop", at, postings))
        elif payouts:
            payout = payouts[which % len(payouts)]
            decider, cmd = {"approve": (decide_approve, Approve("fin", at)),
                            "reject": (decide_reject, Reject("no", at)),
                            "paid": (decide_mark_paid, MarkPaid("ref", at)),
                            "failed": (decide_mark_failed, MarkFailed("rail", at))}[step]
            try:
                events = decided(payout, decider, cmd)
                if step == "approve" and events:
                    check_payable(wallet)
            except RuleViolation:
                continue
            evolve_all(payout, events)
            if events and step != "approve":
                evolve_all(wallet, decide_release(wallet, Release(
                    payout.payout_id, payout.amount, step == "paid", at)))
        assert wallet.available + wallet.in_flight + wallet.paid_out == moved
        assert wallet.in_flight == sum(p.amount for p in payouts
                                       if p.status in ("requested", "approved"))
        assert wallet.paid_out == sum(p.amount for p in payouts if p.status == "paid")
