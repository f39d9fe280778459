"""End to end through a real gRPC server, on SQLite and on PostgreSQL: the worked example as
the API answers it, replays and their receipts, input, keys and tenancy. The order, team and
plan rules themselves are tested on the application in tests/integration/test_order_rules.py."""

from __future__ import annotations

import grpc
import pytest
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
