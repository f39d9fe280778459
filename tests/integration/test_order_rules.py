"""DOMAIN.md's order, attribution, team and plan rules as the application enforces them, on
SQLite and PostgreSQL, one command per request as a storefront or an admin sends them. The
refusals are the domain's errors; which gRPC status each becomes is
tests/e2e/test_api_errors.py's, and the same flows over gRPC (what the API answers, and who may
call) are in tests/e2e/test_grpc_api.py."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from ledger.projections.reader import ReadModels
from ledger.projections.runner import ProjectionRunner

from ledger.application import commands as c
from ledger.application.ledger_app import LedgerApplication, Outcome
from ledger.domain.errors import AlreadyExists, InvalidInput, RuleViolation
from ledger.domain.order import CANCELLED, COMPLETED, Order
from ledger.domain.plan import RANK, RateOverride
from tests.conftest import Clock
from tests.integration.test_event_log import order_state

SHOP = c.Caller("acme", "shop-a", "storefront")
ADMIN = c.Caller("acme", "ops", "admin")
TEA = (c.NewLine("tea", "general", 3, 3333, 2000, "S1"),)  # 3 × 33.33, supply 20.00


def key() -> str:
    return uuid.uuid4().hex


def write(app: LedgerApplication, command: c.Command, caller: c.Caller = SHOP
          ) -> tuple[Outcome, Any]:
    """One request: its outcome and the aggregate it answers with; a refusal is raised."""
    [result] = app.run_batch([(caller, command)])
    if isinstance(result, BaseException):
        raise result
    return result, result.answer if result.answer is not None else app.answer(result.ref)


def enroll(app: LedgerApplication, reseller_id: str, sponsor_id: str = "",
           customer_id: str = "", without_sponsor: bool = False) -> Any:
    return write(app, c.EnrollReseller(key(), reseller_id, sponsor_id, customer_id,
                                       without_sponsor))[1]


def team(app: LedgerApplication) -> None:
    """Alice (no sponsor) ← Bob ← Carol."""
    enroll(app, "alice")
    enroll(app, "bob", "alice")
    enroll(app, "carol", "bob")


def place(app: LedgerApplication, order_id: str, *, reseller: str = "carol",
          customer: str = "c1", lines: tuple[c.NewLine, ...] = TEA) -> Order:
    return write(app, c.PlaceOrder(key(), order_id, customer, reseller, "CNY", lines))[1]


def pay(app: LedgerApplication, order_id: str, amount: int = 9999) -> Order:
    return write(app, c.PayOrder(key(), order_id, f"pay-{order_id}", amount))[1]


def refund(app: LedgerApplication, order_id: str, refund_id: str, *lines: tuple[int, int]
           ) -> Order:
    return write(app, c.RefundOrder(key(), order_id, refund_id,
                                    tuple(c.RefundLineRequest(n, a) for n, a in lines), ""))[1]


def shares(order: Order) -> dict[str, int]:
    return {s.account: s.amount for s in order.shares}


def plan(level_rates_bps: tuple[int, ...], *overrides: RateOverride,
         effective_from: Any = None) -> c.PublishPlan:
    return c.PublishPlan(key(), effective_from, level_rates_bps, overrides, 7, 1000, False)


SHOP_OWNER_RATE = RateOverride(RANK, "shop-owner", 1, 5000)


# --- life of an order -------------------------------------------------------------------------


def test_order_life_and_after_sales(app: LedgerApplication) -> None:
    team(app)
    place(app, "O1")
    pay(app, "O1")
    _, opened = write(app, c.OpenAfterSale(key(), "O1", "case-1", 1, "damaged"))
    assert [(k.case_id, k.open) for k in opened.cases.values()] == [("case-1", True)]
    _, completed = write(app, c.CompleteOrder(key(), "O1"))
    assert completed.status == COMPLETED
    _, closed = write(app, c.CloseAfterSale(key(), "O1", "case-1", "replaced"))
    assert [(k.open, k.resolution) for k in closed.cases.values()] == [(False, "replaced")]
    with pytest.raises(RuleViolation) as again:
        write(app, c.CloseAfterSale(key(), "O1", "case-1", ""))
    assert again.value.reason == "CASE_CLOSED"
    assert order_state(app.order(SHOP, "O1")) == order_state(closed)


def test_cancel_before_payment_only(app: LedgerApplication) -> None:
    team(app)
    place(app, "O1")
    _, cancelled = write(app, c.CancelOrder(key(), "O1", "changed mind"))
    assert cancelled.status == CANCELLED
    assert not cancelled.payment_postings
    with pytest.raises(RuleViolation):
        pay(app, "O1")
    place(app, "O2")
    pay(app, "O2")
    with pytest.raises(RuleViolation) as late:
        write(app, c.CancelOrder(key(), "O2", ""))
    assert late.value.reason == "ORDER_PAID"


def test_partial_refunds_per_line_never_above_paid_and_nothing_half_written(
        app: LedgerApplication) -> None:
    team(app)
    place(app, "O1", lines=(c.NewLine("tea", "general", 1, 1000, 600, "S1"),
                            c.NewLine("cup", "general", 2, 500, 100, "S2")))
    pay(app, "O1", 2000)
    refund(app, "O1", "r1", (1, 400))
    before = order_state(app.order(SHOP, "O1"))
    # The second line of this refund is fine, the first is above what is left: nothing lands.
    with pytest.raises(RuleViolation) as too_much:
        refund(app, "O1", "r2", (2, 100), (1, 601))
    assert too_much.value.reason == "REFUND_EXCEEDS_PAID"
    assert order_state(app.order(SHOP, "O1")) == before
    done = refund(app, "O1", "r2", (2, 100), (1, 600))
    made = done.refunds["r2"]
    assert made.amount == 700
    assert sum(p.amount for p in made.postings) == 0
    assert [done.refunded_by_line[x.line_no] for x in done.lines] == [1000, 100]
    with pytest.raises(AlreadyExists):
        refund(app, "O1", "r2", (2, 1))


def test_refund_of_unpaid_order_is_refused(app: LedgerApplication) -> None:
    team(app)
    place(app, "O1")
    with pytest.raises(RuleViolation) as refused:
        refund(app, "O1", "r1", (1, 1))
    assert refused.value.reason == "ORDER_NOT_PAID"


def test_payment_must_match_total(app: LedgerApplication) -> None:
    team(app)
    place(app, "O1")
    with pytest.raises(RuleViolation) as wrong:
        pay(app, "O1", 9998)
    assert wrong.value.reason == "PAYMENT_AMOUNT_MISMATCH"


# --- attribution and the team tree ------------------------------------------------------------


def test_attribution_named_reseller_then_bound_customer_then_none(app: LedgerApplication) -> None:
    team(app)
    first = place(app, "O1", reseller="carol", customer="c1")
    assert first.seller_id == "carol"
    # c1 is now bound to carol (锁粉): an order without a reseller goes to carol.
    assert place(app, "O2", reseller="", customer="c1").seller_id == "carol"
    # Naming another reseller attributes that order to them but does not rebind c1.
    assert place(app, "O3", reseller="bob", customer="c1").seller_id == "bob"
    assert place(app, "O4", reseller="", customer="c1").seller_id == "carol"
    nobody = place(app, "O5", reseller="", customer="stranger")
    assert nobody.seller_id == ""
    paid = pay(app, "O5")
    assert shares(paid) == {"supplier:S1": 6000, "platform": 3999}


def test_first_binding_stands_and_only_admin_rebinds(app: LedgerApplication) -> None:
    team(app)
    _, made = write(app, c.BindCustomer(key(), "c9", "bob"))
    assert made.reseller_id == "bob"
    _, same = write(app, c.BindCustomer(key(), "c9", "bob"))
    assert same.reseller_id == "bob"
    with pytest.raises(RuleViolation) as other:
        write(app, c.BindCustomer(key(), "c9", "carol"))
    assert other.value.reason == "CUSTOMER_ALREADY_BOUND"
    _, rebound = write(app, c.RebindCustomer(key(), "c9", "carol", "customer asked"), ADMIN)
    assert rebound.reseller_id == "carol"


def test_customer_becoming_reseller_keeps_bound_reseller_as_sponsor(
        app: LedgerApplication) -> None:
    team(app)
    place(app, "O1", reseller="carol", customer="c1")
    assert enroll(app, "dave", customer_id="c1").sponsor_id == "carol"
    place(app, "O2", reseller="carol", customer="c2")
    assert enroll(app, "erin", customer_id="c2", without_sponsor=True).sponsor_id == ""
    place(app, "O3", reseller="carol", customer="c3")
    assert enroll(app, "fay", sponsor_id="alice", customer_id="c3").sponsor_id == "alice"


def test_move_affects_only_orders_paid_afterwards(app: LedgerApplication) -> None:
    team(app)
    enroll(app, "zed")
    place(app, "O1")
    before = order_state(pay(app, "O1"))
    place(app, "O2")
    _, moved = write(app, c.MoveReseller(key(), "carol", "zed", "team change"), ADMIN)
    assert moved.sponsor_id == "zed"
    after = pay(app, "O2")
    assert list(before["upline_chain"]) == ["carol", "bob"]
    assert list(after.upline_chain) == ["carol", "zed"]
    assert shares(after)["reseller:zed"] == 399
    assert order_state(app.order(SHOP, "O1")) == before


def test_cycles_are_refused(app: LedgerApplication) -> None:
    team(app)
    with pytest.raises(RuleViolation) as cycle:
        write(app, c.MoveReseller(key(), "alice", "carol", "oops"), ADMIN)
    assert cycle.value.reason == "SPONSOR_CYCLE"
    with pytest.raises(InvalidInput) as no_reason:
        write(app, c.MoveReseller(key(), "carol", "alice", ""), ADMIN)
    assert "reason" in dict(no_reason.value.violations)


def test_rank_override_applies_to_the_earner(app: LedgerApplication) -> None:
    team(app)
    write(app, plan((4000, 1000), SHOP_OWNER_RATE), ADMIN)
    write(app, c.SetRank(key(), "carol", "shop-owner"), ADMIN)
    place(app, "O1")
    paid = pay(app, "O1")
    assert paid.plan_version == 2
    assert shares(paid) == {"supplier:S1": 6000, "reseller:carol": 1999,
                            "reseller:bob": 399, "platform": 1601}


def test_a_backfill_splits_along_the_chain_and_ranks_of_its_payment_time(
        app: LedgerApplication, store_url: str, clock: Clock) -> None:
    """A move or a rank set after an order was paid does not change who earned on it, nor
    whose team sold it, even when the order is imported afterwards with its payment time;
    one paid before the seller was enrolled is refused (tests/unit/test_team_backfill.py)."""
    write(app, plan((4000, 1000), SHOP_OWNER_RATE), ADMIN)
    team(app)
    enroll(app, "zed")
    enrolled = clock.now
    clock.advance(days=10)
    write(app, c.MoveReseller(key(), "carol", "zed", "team change"), ADMIN)
    write(app, c.SetRank(key(), "carol", "shop-owner"), ADMIN)
    clock.advance(days=1)

    def imported(order_id: str, **times: Any) -> c.ImportOrder:
        return c.ImportOrder(f"import:{order_id}", order_id, f"c-{order_id}", "carol", "CNY",
                             TEA, f"w-{order_id}", **times)

    # One message of an import: its orders go to the writer together.
    results = app.run_batch([(SHOP, command) for command in (
        imported("BEFORE-MOVE", paid_at=enrolled + timedelta(days=5)),
        imported("PLACED-BEFORE", placed_at=enrolled + timedelta(days=5)),
        imported("BEFORE-ENROLMENT", paid_at=enrolled - timedelta(minutes=1)),
        imported("NOW"))])
    refused = [(order_id, type(r)) for order_id, r in zip(
        ("BEFORE-MOVE", "PLACED-BEFORE", "BEFORE-ENROLMENT", "NOW"), results, strict=True)
        if isinstance(r, BaseException)]
    assert refused == [("BEFORE-ENROLMENT", RuleViolation)]

    for old in ("BEFORE-MOVE", "PLACED-BEFORE"):
        order = app.order(SHOP, old)
        assert list(order.upline_chain) == ["carol", "bob"], old
        assert shares(order)["reseller:carol"] == 1599, old
        assert shares(order)["reseller:bob"] == 399, old
    now = app.order(SHOP, "NOW")
    assert list(now.upline_chain) == ["carol", "zed"]
    assert (shares(now)["reseller:carol"], shares(now)["reseller:zed"]) == (1999, 399)
    # The team numbers follow the same tree: the two old sales were in Bob's (and Alice's)
    # team, the new one in Zed's.
    runner = ProjectionRunner(app, store_url)
    models = ReadModels(store_url)
    try:
        runner.setup()
        runner.catch_up()
        gmv = {leader: models.team_stats("acme", leader, "2026-11").team_gmv.get("CNY", 0)
               for leader in ("alice", "bob", "zed")}
    finally:
        models.close()
        runner.stop()
    assert gmv == {"alice": 2 * 9999, "bob": 2 * 9999, "zed": 9999}


# --- plans ------------------------------------------------------------------------------------


def test_plans_are_versioned_and_effective_dated(app: LedgerApplication, clock: Clock) -> None:
    team(app)
    start = clock.now + timedelta(hours=1)
    outcome, book = write(app, plan((3000, 1500, 500), effective_from=start), ADMIN)
    assert book.plan_version(outcome.ref.published_version).version == 2
    place(app, "O1")
    assert pay(app, "O1").plan_version == 1  # the new plan is not in force yet
    clock.advance(hours=2)
    place(app, "O2")
    paid = pay(app, "O2")
    assert paid.plan_version == 2
    assert shares(paid) == {"supplier:S1": 6000, "reseller:carol": 1199, "reseller:bob": 599,
                            "reseller:alice": 199, "platform": 2002}
    assert list(app.plan("acme", version=1).level_rates_bps) == [4000, 1000]
    assert app.plan("acme").version == 2
    with pytest.raises(InvalidInput) as deep:
        write(app, plan((100, 100, 100, 100)), ADMIN)
    assert "plan.level_rates_bps" in dict(deep.value.violations)
    with pytest.raises(InvalidInput) as over:
        write(app, plan((9000, 2000)), ADMIN)
    assert "plan" in dict(over.value.violations)
