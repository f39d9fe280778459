"""End to end through a real gRPC server, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from ledger.clients.sdk import LedgerClient, idempotency_key
from ledger.clients.simulator import line, worked_example

from ledger.api.server import LedgerServer, ServerThread
from ledger.config import Settings
from ledger.v1 import admin_pb2, common_pb2, report_pb2, storefront_pb2
from tests.conftest import Clock, Keys, Running
from tests.helpers import enroll, pay, place, postings, refund, refused, shares, team

StatusCode = grpc.StatusCode


# --- the worked example ---------------------------------------------------------------------


def test_worked_example_over_grpc(shop: LedgerClient) -> None:
    paid, after_first, after_second = worked_example(shop)
    assert paid.status == common_pb2.ORDER_STATUS_PAID
    assert (paid.total, paid.plan_version, list(paid.upline_chain)) == (9999, 1, ["carol", "bob"])
    assert postings(paid.payment_postings) == {
        ("clearing:customer-funds", -9999), ("supplier:S1", 6000), ("reseller:carol", 1599),
        ("reseller:bob", 399), ("platform", 2001),
    }
    assert {p.bucket for p in paid.payment_postings} == {"clearing", "frozen"}
    assert postings(after_first.refunds[0].postings) == {
        ("clearing:customer-funds", 3333), ("supplier:S1", -2000), ("reseller:carol", -533),
        ("reseller:bob", -133), ("platform", -667),
    }
    assert postings(after_second.refunds[1].postings) == {
        ("clearing:customer-funds", 6666), ("supplier:S1", -4000), ("reseller:carol", -1066),
        ("reseller:bob", -266), ("platform", -1334),
    }
    assert all(s.reversed == s.amount for s in after_second.shares)
    assert after_second.refunded == 9999
    assert after_second.lines[0].refunded == 9999


# --- life of an order ---------------------------------------------------------------------


def test_order_life_and_after_sales(shop: LedgerClient) -> None:
    team(shop)
    place(shop, "O1")
    pay(shop, "O1")
    sf = shop.storefront
    opened = sf.OpenAfterSale(storefront_pb2.OpenAfterSaleRequest(
        idempotency_key=idempotency_key(), order_id="O1", case_id="case-1", line_no=1,
        reason="damaged")).order
    assert [(c.case_id, c.open) for c in opened.after_sale_cases] == [("case-1", True)]
    completed = sf.CompleteOrder(storefront_pb2.CompleteOrderRequest(
        idempotency_key=idempotency_key(), order_id="O1")).order
    assert completed.status == common_pb2.ORDER_STATUS_COMPLETED
    closed = sf.CloseAfterSale(storefront_pb2.CloseAfterSaleRequest(
        idempotency_key=idempotency_key(), order_id="O1", case_id="case-1",
        resolution="replaced")).order
    assert [(c.open, c.resolution) for c in closed.after_sale_cases] == [(False, "replaced")]
    again = refused(lambda: sf.CloseAfterSale(storefront_pb2.CloseAfterSaleRequest(
        idempotency_key=idempotency_key(), order_id="O1", case_id="case-1")))
    assert (again.code, again.reason) == (StatusCode.FAILED_PRECONDITION, "CASE_CLOSED")
    got = sf.GetOrder(storefront_pb2.GetOrderRequest(order_id="O1")).order
    assert got == closed


def test_cancel_before_payment_only(shop: LedgerClient) -> None:
    team(shop)
    place(shop, "O1")
    cancelled = shop.storefront.CancelOrder(storefront_pb2.CancelOrderRequest(
        idempotency_key=idempotency_key(), order_id="O1", reason="changed mind")).order
    assert cancelled.status == common_pb2.ORDER_STATUS_CANCELLED
    assert not cancelled.payment_postings
    paying = refused(lambda: pay(shop, "O1"))
    assert paying.code == StatusCode.FAILED_PRECONDITION
    place(shop, "O2")
    pay(shop, "O2")
    late = refused(lambda: shop.storefront.CancelOrder(storefront_pb2.CancelOrderRequest(
        idempotency_key=idempotency_key(), order_id="O2")))
    assert (late.code, late.reason) == (StatusCode.FAILED_PRECONDITION, "ORDER_PAID")


def test_partial_refunds_per_line_never_above_paid_and_nothing_half_written(
    shop: LedgerClient,
) -> None:
    team(shop)
    place(shop, "O1", lines=[line("tea", 1, 1000, 600), line("cup", 2, 500, 100, "S2")])
    pay(shop, "O1", 2000)
    refund(shop, "O1", "r1", (1, 400))
    before = shop.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id="O1")).order
    # The second line of this refund is fine, the first is above what is left: nothing lands.
    too_much = refused(lambda: refund(shop, "O1", "r2", (2, 100), (1, 601)))
    assert (too_much.code, too_much.reason) == (StatusCode.FAILED_PRECONDITION,
                                                "REFUND_EXCEEDS_PAID")
    after = shop.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id="O1")).order
    assert after == before
    done = refund(shop, "O1", "r2", (2, 100), (1, 600))
    assert done.refund.amount == 700
    assert sum(p.amount for p in done.refund.postings) == 0
    assert [x.refunded for x in done.order.lines] == [1000, 100]
    duplicate = refused(lambda: refund(shop, "O1", "r2", (2, 1)))
    assert duplicate.code == StatusCode.ALREADY_EXISTS


def test_refund_of_unpaid_order_is_refused(shop: LedgerClient) -> None:
    team(shop)
    place(shop, "O1")
    r = refused(lambda: refund(shop, "O1", "r1", (1, 1)))
    assert (r.code, r.reason) == (StatusCode.FAILED_PRECONDITION, "ORDER_NOT_PAID")


# --- attribution and the team tree --------------------------------------------------------


def test_attribution_named_reseller_then_bound_customer_then_none(shop: LedgerClient) -> None:
    team(shop)
    first = place(shop, "O1", reseller="carol", customer="c1")
    assert first.seller_id == "carol"
    # c1 is now bound to carol (锁粉): an order without a reseller goes to carol.
    assert place(shop, "O2", reseller="", customer="c1").seller_id == "carol"
    # Naming another reseller attributes that order to them but does not rebind c1.
    assert place(shop, "O3", reseller="bob", customer="c1").seller_id == "bob"
    assert place(shop, "O4", reseller="", customer="c1").seller_id == "carol"
    nobody = place(shop, "O5", reseller="", customer="stranger")
    assert nobody.seller_id == ""
    paid = pay(shop, "O5")
    assert shares(paid) == {"supplier:S1": 6000, "platform": 3999}


def test_first_binding_stands_and_only_admin_rebinds(shop: LedgerClient,
                                                     admin: LedgerClient) -> None:
    team(shop)
    bind = shop.storefront.BindCustomer
    made = bind(storefront_pb2.BindCustomerRequest(
        idempotency_key=idempotency_key(), customer_id="c9", reseller_id="bob")).binding
    assert made.reseller_id == "bob"
    same = bind(storefront_pb2.BindCustomerRequest(
        idempotency_key=idempotency_key(), customer_id="c9", reseller_id="bob")).binding
    assert same.reseller_id == "bob"
    other = refused(lambda: bind(storefront_pb2.BindCustomerRequest(
        idempotency_key=idempotency_key(), customer_id="c9", reseller_id="carol")))
    assert (other.code, other.reason) == (StatusCode.FAILED_PRECONDITION,
                                          "CUSTOMER_ALREADY_BOUND")
    rebound = admin.admin.RebindCustomer(admin_pb2.RebindCustomerRequest(
        idempotency_key=idempotency_key(), customer_id="c9", reseller_id="carol",
        reason="customer asked")).binding
    assert rebound.reseller_id == "carol"


def test_customer_becoming_reseller_keeps_bound_reseller_as_sponsor(shop: LedgerClient) -> None:
    team(shop)
    place(shop, "O1", reseller="carol", customer="c1")
    assert enroll(shop, "dave", customer_id="c1").sponsor_id == "carol"
    place(shop, "O2", reseller="carol", customer="c2")
    assert enroll(shop, "erin", customer_id="c2", without_sponsor=True).sponsor_id == ""
    place(shop, "O3", reseller="carol", customer="c3")
    assert enroll(shop, "fay", sponsor_id="alice", customer_id="c3").sponsor_id == "alice"


def test_move_affects_only_orders_paid_afterwards(shop: LedgerClient,
                                                  admin: LedgerClient) -> None:
    team(shop)
    enroll(shop, "zed")
    place(shop, "O1")
    before = pay(shop, "O1")
    place(shop, "O2")
    moved = admin.admin.MoveReseller(admin_pb2.MoveResellerRequest(
        idempotency_key=idempotency_key(), reseller_id="carol", new_sponsor_id="zed",
        reason="team change")).reseller
    assert moved.sponsor_id == "zed"
    after = pay(shop, "O2")
    assert list(before.upline_chain) == ["carol", "bob"]
    assert list(after.upline_chain) == ["carol", "zed"]
    assert shares(after)["reseller:zed"] == 399
    unchanged = shop.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id="O1")).order
    assert unchanged == before


def test_a_backfill_splits_along_the_chain_and_ranks_of_its_payment_time(
        shop: LedgerClient, admin: LedgerClient, clock: Clock) -> None:
    """A move or a rank set after an order was paid does not change who earned on it, nor
    whose team sold it, even when the order is imported afterwards with its payment time;
    one paid before the seller was enrolled is refused (tests/test_team_backfill.py)."""
    admin.admin.PublishPlan(admin_pb2.PublishPlanRequest(
        idempotency_key=idempotency_key(), plan=admin_pb2.CommissionPlan(
            level_rates_bps=[4000, 1000], freeze_days=7, min_payout=1000,
            overrides=[admin_pb2.RateOverride(scope=admin_pb2.OVERRIDE_SCOPE_RANK,
                                              key="shop-owner", level=1, rate_bps=5000)])))
    team(shop)
    enroll(shop, "zed")
    enrolled = clock.now
    clock.advance(days=10)
    admin.admin.MoveReseller(admin_pb2.MoveResellerRequest(
        idempotency_key=idempotency_key(), reseller_id="carol", new_sponsor_id="zed",
        reason="team change"))
    admin.admin.SetRank(admin_pb2.SetRankRequest(
        idempotency_key=idempotency_key(), reseller_id="carol", rank="shop-owner"))
    clock.advance(days=1)

    def stamp(at: datetime) -> Timestamp:
        t = Timestamp()
        t.FromDatetime(at)
        return t

    def imported(order_id: str, **times: Timestamp) -> storefront_pb2.ImportedOrder:
        return storefront_pb2.ImportedOrder(
            order_id=order_id, customer_id=f"c-{order_id}", reseller_id="carol",
            currency="CNY", lines=[line("tea", 3, 3333, 2000)], payment_id=f"w-{order_id}",
            **times)

    reply = shop.storefront.ImportOrders(iter([storefront_pb2.ImportOrdersRequest(orders=[
        imported("BEFORE-MOVE", paid_at=stamp(enrolled + timedelta(days=5))),
        imported("PLACED-BEFORE", placed_at=stamp(enrolled + timedelta(days=5))),
        imported("BEFORE-ENROLMENT", paid_at=stamp(enrolled - timedelta(minutes=1))),
        imported("NOW"),
    ])]))
    assert reply.imported == 3, reply.failures
    assert [(f.order_id, f.code) for f in reply.failures] == [
        ("BEFORE-ENROLMENT", "FAILED_PRECONDITION")]

    def order(order_id: str) -> common_pb2.Order:
        return shop.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id=order_id)).order

    for old in ("BEFORE-MOVE", "PLACED-BEFORE"):
        assert list(order(old).upline_chain) == ["carol", "bob"], old
        assert shares(order(old))["reseller:carol"] == 1599, old
        assert shares(order(old))["reseller:bob"] == 399, old
    now = order("NOW")
    assert list(now.upline_chain) == ["carol", "zed"]
    assert (shares(now)["reseller:carol"], shares(now)["reseller:zed"]) == (1999, 399)
    # The team numbers follow the same tree: the two old sales were in Bob's (and Alice's)
    # team, the new one in Zed's.
    gmv = {}
    for leader in ("alice", "bob", "zed"):
        stats = shop.report.GetTeamStats(report_pb2.GetTeamStatsRequest(
            reseller_id=leader, month="2026-11", min_log_position=reply.receipt.log_position))
        gmv[leader] = stats.sales[0].team_gmv if stats.sales else 0
    assert gmv == {"alice": 2 * 9999, "bob": 2 * 9999, "zed": 9999}


def test_cycles_are_refused(shop: LedgerClient, admin: LedgerClient) -> None:
    team(shop)
    move = admin.admin.MoveReseller
    cycle = refused(lambda: move(admin_pb2.MoveResellerRequest(
        idempotency_key=idempotency_key(), reseller_id="alice", new_sponsor_id="carol",
        reason="oops")))
    assert (cycle.code, cycle.reason) == (StatusCode.FAILED_PRECONDITION, "SPONSOR_CYCLE")
    no_reason = refused(lambda: move(admin_pb2.MoveResellerRequest(
        idempotency_key=idempotency_key(), reseller_id="carol", new_sponsor_id="alice")))
    assert no_reason.code == StatusCode.INVALID_ARGUMENT and "reason" in no_reason.fields


def test_rank_override_applies_to_the_earner(shop: LedgerClient, admin: LedgerClient,
                                             clock: Clock) -> None:
    team(shop)
    admin.admin.PublishPlan(admin_pb2.PublishPlanRequest(
        idempotency_key=idempotency_key(), plan=admin_pb2.CommissionPlan(
            level_rates_bps=[4000, 1000], freeze_days=7, min_payout=1000,
            overrides=[admin_pb2.RateOverride(scope=admin_pb2.OVERRIDE_SCOPE_RANK,
                                              key="shop-owner", level=1, rate_bps=5000)])))
    admin.admin.SetRank(admin_pb2.SetRankRequest(
        idempotency_key=idempotency_key(), reseller_id="carol", rank="shop-owner"))
    place(shop, "O1")
    paid = pay(shop, "O1")
    assert paid.plan_version == 2
    assert shares(paid) == {"supplier:S1": 6000, "reseller:carol": 1999,
                            "reseller:bob": 399, "platform": 1601}


# --- plans --------------------------------------------------------------------------------


def test_plans_are_versioned_and_effective_dated(shop: LedgerClient, admin: LedgerClient,
                                                 clock: Clock) -> None:
    team(shop)
    start = Timestamp()
    start.FromDatetime(clock.advance(hours=1))
    clock.advance(hours=-1)
    published = admin.admin.PublishPlan(admin_pb2.PublishPlanRequest(
        idempotency_key=idempotency_key(), plan=admin_pb2.CommissionPlan(
            level_rates_bps=[3000, 1500, 500], effective_from=start, freeze_days=7,
            min_payout=1000))).plan
    assert published.version == 2
    place(shop, "O1")
    assert pay(shop, "O1").plan_version == 1  # the new plan is not in force yet
    clock.advance(hours=2)
    place(shop, "O2")
    paid = pay(shop, "O2")
    assert paid.plan_version == 2
    assert shares(paid) == {"supplier:S1": 6000, "reseller:carol": 1199, "reseller:bob": 599,
                            "reseller:alice": 199, "platform": 2002}
    assert admin.admin.GetPlan(admin_pb2.GetPlanRequest(version=1)).plan.level_rates_bps == [
        4000, 1000]
    assert admin.admin.GetPlan(admin_pb2.GetPlanRequest()).plan.version == 2
    deep = refused(lambda: admin.admin.PublishPlan(admin_pb2.PublishPlanRequest(
        idempotency_key=idempotency_key(),
        plan=admin_pb2.CommissionPlan(level_rates_bps=[100, 100, 100, 100]))))
    assert deep.code == StatusCode.INVALID_ARGUMENT and "plan.level_rates_bps" in deep.fields
    over = refused(lambda: admin.admin.PublishPlan(admin_pb2.PublishPlanRequest(
        idempotency_key=idempotency_key(),
        plan=admin_pb2.CommissionPlan(level_rates_bps=[9000, 2000]))))
    assert over.code == StatusCode.INVALID_ARGUMENT and "plan" in over.fields


# --- idempotency --------------------------------------------------------------------------


def test_retry_with_same_key_returns_first_answer_and_writes_nothing(shop: LedgerClient) -> None:
    team(shop)
    place(shop, "O1")
    request = storefront_pb2.PayOrderRequest(idempotency_key="pay-O1-attempt", order_id="O1",
                                             payment_id="wx-1", amount=9999)
    first = shop.storefront.PayOrder(request)
    refund(shop, "O1", "r1", (1, 3333))
    again = shop.storefront.PayOrder(request)
    assert again.order == first.order  # the first answer, not today's state
    assert again.receipt.replayed and not first.receipt.replayed
    # The first answer's receipt too, though the refund has moved the log's head since.
    assert again.receipt.log_position == first.receipt.log_position
    refund_request = storefront_pb2.RefundOrderRequest(
        idempotency_key="refund-key", order_id="O1", refund_id="r2",
        lines=[common_pb2.RefundLine(line_no=1, amount=1)])
    made = shop.storefront.RefundOrder(refund_request)
    replay = shop.storefront.RefundOrder(refund_request)
    assert replay.refund == made.refund and replay.order == made.order
    now = shop.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id="O1")).order
    assert now.refunded == 3334 and len(now.refunds) == 2


def test_basic_view_answers_without_the_split_and_a_retry_may_ask_for_either(
        shop: LedgerClient) -> None:
    """The view shapes the answer only: it is not part of the write, so a retry with the
    same key and another view is the same write, answered in the view it asks for."""
    team(shop)
    place(shop, "O1")
    request = storefront_pb2.PayOrderRequest(idempotency_key="pay-O1", order_id="O1",
                                             payment_id="wx-1", amount=9999,
                                             view=common_pb2.ORDER_VIEW_BASIC)
    basic = shop.storefront.PayOrder(request)
    assert (basic.order.order_id, basic.order.status, basic.order.total) == (
        "O1", common_pb2.ORDER_STATUS_PAID, 9999)
    assert basic.order.HasField("paid_at") and basic.order.plan_version == 1
    assert not (basic.order.lines or basic.order.shares or basic.order.payment_postings)
    request.view = common_pb2.ORDER_VIEW_FULL
    full = shop.storefront.PayOrder(request)
    assert full.receipt.replayed and full.receipt.log_position == basic.receipt.log_position
    assert len(full.order.shares) == 4 and len(full.order.payment_postings) == 5
    request.ClearField("view")  # unset: the whole order, as before views existed
    assert shop.storefront.PayOrder(request).order == full.order
    stored = shop.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id="O1")).order
    assert stored == full.order


@pytest.mark.postgres
def test_a_replay_answers_the_first_receipt_on_any_server_and_after_a_restart(
        postgres_url: str, clock: Clock) -> None:
    """Two servers over one PostgreSQL store: the first call on one, its replay on the
    other, and again on a server started afterwards."""
    keys = Keys()
    settings = Settings(database_url=f"{postgres_url}&pool_size=2", listen="127.0.0.1:0")

    def server() -> ServerThread:
        return ServerThread(LedgerServer(settings, keys.ring(), clock=clock))

    request = storefront_pb2.PayOrderRequest(idempotency_key="pay-O1", order_id="O1",
                                             payment_id="w", amount=9999)
    with server() as one, server() as two, LedgerClient(one.target, keys.shop_a) as first, \
            LedgerClient(two.target, keys.shop_a) as second:
        team(first)
        place(first, "O1")
        made = first.storefront.PayOrder(request)
        place(second, "O2")  # the log's head moves on
        replay = second.storefront.PayOrder(request)
        assert replay.receipt == common_pb2.WriteReceipt(
            log_position=made.receipt.log_position, replayed=True)
        assert replay.order == made.order
        # The receipt is a position at which the other server's reads hold the write.
        seen = second.report.GetBalance(report_pb2.GetBalanceRequest(
            account="reseller:carol", min_log_position=replay.receipt.log_position),
            timeout=30)
        assert [b.frozen for b in seen.balances] == [1599]
    with server() as three, LedgerClient(three.target, keys.shop_a) as later:
        assert later.storefront.PayOrder(request).receipt == replay.receipt


def test_same_key_different_request_is_refused(shop: LedgerClient) -> None:
    team(shop)
    place(shop, "O1", key="k-1")
    changed = refused(lambda: place(shop, "O2", key="k-1"))
    assert (changed.code, changed.reason) == (StatusCode.FAILED_PRECONDITION,
                                              "IDEMPOTENCY_KEY_REUSED")
    missing = refused(lambda: shop.storefront.GetOrder(
        storefront_pb2.GetOrderRequest(order_id="O2")))
    assert missing.code == StatusCode.NOT_FOUND


def test_concurrent_retries_of_one_write_write_once(running: Running) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with running.client(running.keys.shop_a) as shop:
        team(shop)
        place(shop, "O1")
        request = storefront_pb2.RefundOrderRequest(
            idempotency_key="same", order_id="O1", refund_id="r1",
            lines=[common_pb2.RefundLine(line_no=1, amount=100)])
        with ThreadPoolExecutor(8) as pool:
            pay(shop, "O1")
            answers = list(pool.map(lambda _: shop.storefront.RefundOrder(request), range(16)))
        assert len({a.refund.SerializeToString() for a in answers}) == 1
        assert sum(not a.receipt.replayed for a in answers) == 1
        order = shop.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id="O1")).order
        assert order.refunded == 100


# --- input, authentication, isolation -----------------------------------------------------


def test_malformed_input_names_every_bad_field(shop: LedgerClient) -> None:
    bad = refused(lambda: shop.storefront.PlaceOrder(storefront_pb2.PlaceOrderRequest(
        order_id="", customer_id="c1", currency="yuan",
        lines=[common_pb2.OrderLine(sku="", quantity=0, unit_sale_price=-5,
                                    unit_supply_price=1, supplier_id="S1")])))
    assert bad.code == StatusCode.INVALID_ARGUMENT
    assert {"idempotency_key", "order_id", "currency", "lines[0].sku", "lines[0].quantity",
            "lines[0].unit_sale_price"} <= set(bad.fields)
    empty = refused(lambda: shop.storefront.PlaceOrder(storefront_pb2.PlaceOrderRequest(
        idempotency_key="k", order_id="O", customer_id="c", currency="CNY")))
    assert "lines" in empty.fields
    assigned = refused(lambda: shop.storefront.PlaceOrder(storefront_pb2.PlaceOrderRequest(
        idempotency_key="k", order_id="O", customer_id="c", currency="CNY",
        lines=[common_pb2.OrderLine(line_no=7, sku="x", quantity=1, supplier_id="S")])))
    assert "lines[0]" in assigned.fields


def test_unknown_things_are_not_found(shop: LedgerClient, admin: LedgerClient) -> None:
    assert refused(lambda: pay(shop, "nope")).code == StatusCode.NOT_FOUND
    assert refused(lambda: place(shop, "O1", reseller="ghost")).code == StatusCode.NOT_FOUND
    assert refused(lambda: enroll(shop, "x", sponsor_id="ghost")).code == StatusCode.NOT_FOUND
    assert refused(lambda: admin.admin.GetReseller(
        admin_pb2.GetResellerRequest(reseller_id="ghost"))).code == StatusCode.NOT_FOUND
    team(shop)
    again = refused(lambda: enroll(shop, "alice"))
    assert again.code == StatusCode.ALREADY_EXISTS
    place(shop, "O1")
    assert refused(lambda: place(shop, "O1")).code == StatusCode.ALREADY_EXISTS


def test_payment_must_match_total(shop: LedgerClient) -> None:
    team(shop)
    place(shop, "O1")
    wrong = refused(lambda: pay(shop, "O1", 9998))
    assert (wrong.code, wrong.reason) == (StatusCode.FAILED_PRECONDITION,
                                          "PAYMENT_AMOUNT_MISMATCH")


def test_keys_are_checked(running: Running) -> None:
    with LedgerClient(running.target, "not-a-key") as stranger:
        r = refused(lambda: stranger.storefront.GetOrder(
            storefront_pb2.GetOrderRequest(order_id="O1")))
        assert r.code == StatusCode.UNAUTHENTICATED
    with grpc.insecure_channel(running.target) as channel:
        from ledger.v1 import storefront_pb2_grpc

        anonymous = storefront_pb2_grpc.StorefrontServiceStub(channel)
        r = refused(lambda: anonymous.GetOrder(storefront_pb2.GetOrderRequest(order_id="O1")))
        assert r.code == StatusCode.UNAUTHENTICATED
    with running.client(running.keys.shop_a) as shop:
        r = refused(lambda: shop.admin.SetRank(admin_pb2.SetRankRequest(
            idempotency_key="k", reseller_id="alice", rank="x")))
        assert r.code == StatusCode.PERMISSION_DENIED
    with running.client(running.keys.admin) as admin:
        r = refused(lambda: admin.storefront.GetOrder(
            storefront_pb2.GetOrderRequest(order_id="O1")))
        assert r.code == StatusCode.PERMISSION_DENIED


def test_storefronts_number_their_own_orders_and_learn_nothing_of_the_others(
        running: Running) -> None:
    """DOMAIN.md: an order id is unique within its storefront, two storefronts may use the
    same id, and neither learns anything of the other's orders."""
    keys = running.keys
    with running.client(keys.shop_a) as a, running.client(keys.shop_b) as b, \
            running.client(keys.other_platform_shop) as other:
        team(a)
        sf = b.storefront
        attempts = {
            "GetOrder": lambda: sf.GetOrder(storefront_pb2.GetOrderRequest(order_id="O1")),
            "PayOrder": lambda: sf.PayOrder(storefront_pb2.PayOrderRequest(
                idempotency_key="b-pay", order_id="O1", payment_id="w", amount=9999)),
            "CompleteOrder": lambda: sf.CompleteOrder(storefront_pb2.CompleteOrderRequest(
                idempotency_key="b-complete", order_id="O1")),
            "CancelOrder": lambda: sf.CancelOrder(storefront_pb2.CancelOrderRequest(
                idempotency_key="b-cancel", order_id="O1", reason="x")),
            "RefundOrder": lambda: refund(b, "O1", "r1", (1, 1), key="b-refund"),
            "OpenAfterSale": lambda: sf.OpenAfterSale(storefront_pb2.OpenAfterSaleRequest(
                idempotency_key="b-open", order_id="O1", case_id="k1", line_no=1)),
            "CloseAfterSale": lambda: sf.CloseAfterSale(storefront_pb2.CloseAfterSaleRequest(
                idempotency_key="b-close", order_id="O1", case_id="k1")),
        }
        nobody_used = {name: refused(call) for name, call in attempts.items()}
        assert {r.code for r in nobody_used.values()} == {StatusCode.NOT_FOUND}
        place(a, "O1")
        pay(a, "O1")
        a.storefront.OpenAfterSale(storefront_pb2.OpenAfterSaleRequest(
            idempotency_key=idempotency_key(), order_id="O1", case_id="k1", line_no=1))
        # Code, message and details: exactly as before A used the id.
        assert {name: refused(call) for name, call in attempts.items()} == nobody_used

        # B's own O1 is another order, and writing it leaves A's alone.
        mine = place(b, "O1", reseller="bob", customer="c2", lines=[line("cup", 1, 500, 200)])
        assert (mine.storefront_id, mine.total, mine.seller_id) == ("shop-b", 500, "bob")
        pay(b, "O1", 500)
        refund(b, "O1", "r1", (1, 100))
        again = refused(lambda: place(b, "O1"))
        assert again.code == StatusCode.ALREADY_EXISTS
        theirs = a.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id="O1")).order
        assert (theirs.storefront_id, theirs.total, theirs.refunded) == ("shop-a", 9999, 0)
        assert [c.open for c in theirs.after_sale_cases] == [True]
        assert sf.GetOrder(storefront_pb2.GetOrderRequest(order_id="O1")).order.refunded == 100

        # An import numbers orders the same way: B imports an id A used, as its own.
        def imported(client: LedgerClient, seller: str) -> storefront_pb2.ImportOrdersResponse:
            return client.storefront.ImportOrders(iter([storefront_pb2.ImportOrdersRequest(
                orders=[storefront_pb2.ImportedOrder(
                    order_id="B7", customer_id="c7", reseller_id=seller, currency="CNY",
                    lines=[line("tea", 1, 3333, 2000)], payment_id="w7", completed=True)])]))

        assert (imported(a, "carol").imported, imported(b, "bob").imported) == (1, 1)
        assert imported(b, "bob").imported == 1  # resent: the same write, once
        sellers = {client.storefront.GetOrder(storefront_pb2.GetOrderRequest(
            order_id="B7")).order.seller_id for client in (a, b)}
        assert sellers == {"carol", "bob"}

        # Another platform is another tenant: the same ids name different things.
        missing = refused(lambda: other.storefront.GetOrder(
            storefront_pb2.GetOrderRequest(order_id="O1")))
        assert missing == nobody_used["GetOrder"]
        team(other)
        assert place(other, "O1").order_id == "O1"


def test_health_and_reflection(running: Running) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(running.target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(
            service="ledger.v1.StorefrontService"))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_bulk_import_streams_batches_and_is_safe_to_resend(shop: LedgerClient) -> None:
    team(shop)

    def batches() -> list[storefront_pb2.ImportOrdersRequest]:
        return [
            storefront_pb2.ImportOrdersRequest(orders=[
                storefront_pb2.ImportedOrder(
                    order_id=f"B{n}", customer_id=f"c{n}", reseller_id="carol",
                    currency="CNY", lines=[line("tea", 3, 3333, 2000)], payment_id=f"w{n}",
                    completed=n % 2 == 0)
                for n in range(start, start + 50)])
            for start in (0, 50)
        ] + [storefront_pb2.ImportOrdersRequest(orders=[storefront_pb2.ImportedOrder(
            order_id="ghost-order", customer_id="c", reseller_id="ghost", currency="CNY",
            lines=[line("tea", 1, 100, 50)], payment_id="w")])]

    first = shop.storefront.ImportOrders(iter(batches()))
    assert (first.orders, first.imported) == (101, 100)
    assert [(f.order_id, f.code) for f in first.failures] == [("ghost-order", "NOT_FOUND")]
    again = shop.storefront.ImportOrders(iter(batches()))
    assert (again.orders, again.imported) == (101, 100)
    assert again.receipt.log_position == first.receipt.log_position  # the first writes
    got = shop.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id="B2")).order
    assert got.status == common_pb2.ORDER_STATUS_COMPLETED
    assert shares(got)["reseller:carol"] == 1599
    odd = shop.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id="B3")).order
    assert odd.status == common_pb2.ORDER_STATUS_PAID and len(odd.refunds) == 0
    # One order is one write: resent with other contents, or malformed, it fails alone.
    changed = shop.storefront.ImportOrders(iter([storefront_pb2.ImportOrdersRequest(orders=[
        storefront_pb2.ImportedOrder(order_id="B0", customer_id="c0", reseller_id="carol",
                                     currency="CNY", lines=[line("tea", 1, 3333, 2000)],
                                     payment_id="w0", completed=True),
        storefront_pb2.ImportedOrder(order_id="B900", customer_id="c900", reseller_id="carol",
                                     currency="XXQ", lines=[line("tea", 1, 100, 50)],
                                     payment_id="w900"),
        storefront_pb2.ImportedOrder(order_id="B901", customer_id="c901", reseller_id="carol",
                                     currency="CNY", lines=[line("tea", 1, 100, 50)],
                                     payment_id="w901")])]))
    assert (changed.orders, changed.imported) == (3, 1)
    assert [(f.order_id, f.code) for f in changed.failures] == [
        ("B0", "FAILED_PRECONDITION"), ("B900", "INVALID_ARGUMENT")]
