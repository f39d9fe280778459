"""The read models over gRPC: balances, the team tree and team numbers, read-your-writes.
The team numbers' rules, figure by figure, are in tests/integration/test_team_numbers.py."""

from __future__ import annotations

from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from ledger.clients.sdk import LedgerClient, idempotency_key

from ledger.api.server import LedgerServer, ServerThread
from ledger.config import Settings
from ledger.v1 import admin_pb2, report_pb2, storefront_pb2
from tests.conftest import Clock, Keys, Running
from tests.helpers import enroll, pay, place, refund, refused, team

StatusCode = grpc.StatusCode


def ts(at: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(at)
    return out


def balance(client: LedgerClient, account: str, min_position: int = 0,
            as_of: report_pb2.AsOf | None = None) -> dict[str, int]:
    reply = client.report.GetBalance(report_pb2.GetBalanceRequest(
        account=account, min_log_position=min_position, as_of=as_of), timeout=10)
    if not reply.balances:
        return {}
    [b] = reply.balances
    return {k: v for k, v in (("frozen", b.frozen), ("available", b.available),
                              ("debt", b.debt), ("clearing", b.clearing)) if v}


def test_worked_example_balances_read_their_own_writes(shop: LedgerClient) -> None:
    team(shop)
    place(shop, "O1")
    paid = shop.storefront.PayOrder(storefront_pb2.PayOrderRequest(
        idempotency_key=idempotency_key(), order_id="O1", payment_id="w", amount=9999))
    at_payment = paid.receipt.log_position
    expected = {"reseller:carol": 1599, "reseller:bob": 399, "platform": 2001,
                "supplier:S1": 6000}
    for account, amount in expected.items():
        assert balance(shop, account, at_payment) == {"frozen": amount}
    assert balance(shop, "clearing:customer-funds", at_payment) == {"clearing": -9999}
    assert balance(shop, "reseller:alice", at_payment) == {}
    first = refund(shop, "O1", "r1", (1, 3333)).receipt.log_position
    assert balance(shop, "reseller:carol", first) == {"frozen": 1066}
    assert balance(shop, "reseller:bob", first) == {"frozen": 266}
    last = refund(shop, "O1", "r2", (1, 6666)).receipt.log_position
    for account in expected:
        assert balance(shop, account, last) == {}
    # As of the payment's position, the past is still there.
    assert balance(shop, "reseller:carol", as_of=report_pb2.AsOf(log_position=at_payment)) == {
        "frozen": 1599}
    assert balance(shop, "reseller:carol", as_of=report_pb2.AsOf(log_position=first)) == {
        "frozen": 1066}


def test_balances_as_of_a_time(shop: LedgerClient, clock: Clock) -> None:
    team(shop)
    place(shop, "O1")
    pay(shop, "O1")
    before_refund = clock.advance(days=1)
    clock.advance(days=1)
    position = refund(shop, "O1", "r1", (1, 3333)).receipt.log_position
    assert balance(shop, "reseller:carol", position) == {"frozen": 1066}
    assert balance(shop, "reseller:carol",
                   as_of=report_pb2.AsOf(time=ts(before_refund))) == {"frozen": 1599}


def test_list_balances_pages_sorts_and_filters(shop: LedgerClient) -> None:
    team(shop)
    for n, seller in enumerate(["carol", "bob", "alice", "carol"]):
        place(shop, f"O{n}", reseller=seller, customer=f"c{n}")
        position = shop.storefront.PayOrder(storefront_pb2.PayOrderRequest(
            idempotency_key=idempotency_key(), order_id=f"O{n}", payment_id="w",
            amount=9999)).receipt.log_position
    listing = shop.report.ListBalances(report_pb2.ListBalancesRequest(
        kind="reseller", order_by=report_pb2.BALANCE_ORDER_FROZEN_DESC, page_size=2,
        min_log_position=position))
    assert [(b.account, b.frozen) for b in listing.balances] == [
        ("reseller:carol", 3198), ("reseller:bob", 2397)]
    rest = shop.report.ListBalances(report_pb2.ListBalancesRequest(
        kind="reseller", order_by=report_pb2.BALANCE_ORDER_FROZEN_DESC, page_size=2,
        page_token=listing.next_page_token))
    assert [(b.account, b.frozen) for b in rest.balances] == [("reseller:alice", 1998)]
    assert rest.next_page_token == ""
    everyone = shop.report.ListBalances(report_pb2.ListBalancesRequest())
    assert sum(b.frozen + b.available + b.clearing for b in everyone.balances) == 0
    bad = refused(lambda: shop.report.ListBalances(report_pb2.ListBalancesRequest(
        kind="wizard")))
    assert bad.code == StatusCode.INVALID_ARGUMENT and "kind" in bad.fields
    token = refused(lambda: shop.report.ListBalances(report_pb2.ListBalancesRequest(
        page_token="!!")))
    assert "page_token" in token.fields


def test_balance_pages_never_repeat_an_account_when_others_appear_between_pages(
        shop: LedgerClient) -> None:
    """Pages continue after the last account listed: an account that appears before it
    between two pages does not push that one onto the next page again."""
    team(shop)
    place(shop, "O1", reseller="carol", customer="c1")
    paid = shop.storefront.PayOrder(storefront_pb2.PayOrderRequest(
        idempotency_key=idempotency_key(), order_id="O1", payment_id="w",
        amount=9999)).receipt.log_position
    first = shop.report.ListBalances(report_pb2.ListBalancesRequest(
        order_by=report_pb2.BALANCE_ORDER_ACCOUNT, page_size=3, min_log_position=paid))
    assert [b.account for b in first.balances] == [
        "clearing:customer-funds", "platform", "reseller:bob"]
    place(shop, "O2", reseller="alice", customer="c2")  # reseller:alice sorts before bob
    position = shop.storefront.PayOrder(storefront_pb2.PayOrderRequest(
        idempotency_key=idempotency_key(), order_id="O2", payment_id="w",
        amount=9999)).receipt.log_position
    rest = shop.report.ListBalances(report_pb2.ListBalancesRequest(
        order_by=report_pb2.BALANCE_ORDER_ACCOUNT, page_size=3,
        page_token=first.next_page_token, min_log_position=position))
    assert [b.account for b in rest.balances] == ["reseller:carol", "supplier:S1"]
    import base64

    legacy = base64.urlsafe_b64encode(b"o:4").decode()  # an offset token from before keysets
    older = shop.report.ListBalances(report_pb2.ListBalancesRequest(
        order_by=report_pb2.BALANCE_ORDER_ACCOUNT, page_size=3, page_token=legacy))
    assert [b.account for b in older.balances] == ["reseller:carol", "supplier:S1"]
    foreign = refused(lambda: shop.report.ListBalances(report_pb2.ListBalancesRequest(
        page_token=shop.report.ListSubtree(report_pb2.ListSubtreeRequest(
            reseller_id="alice", page_size=1)).next_page_token)))
    assert "page_token" in foreign.fields


def test_team_tree_moves_and_history(shop: LedgerClient, admin: LedgerClient,
                                     clock: Clock) -> None:
    team(shop)
    enroll(shop, "dave", "carol")
    enroll(shop, "erin", "carol")
    enroll(shop, "zed")
    report = shop.report
    before_move = clock.advance(days=1)
    clock.advance(days=1)
    position = admin.admin.MoveReseller(admin_pb2.MoveResellerRequest(
        idempotency_key=idempotency_key(), reseller_id="carol", new_sponsor_id="zed",
        reason="restructure")).receipt.log_position
    member = report.GetTeamMember(report_pb2.GetTeamMemberRequest(
        reseller_id="carol", min_log_position=position)).member
    assert (member.sponsor_id, member.depth, member.direct_downline, member.team_size) == (
        "zed", 1, 2, 2)
    alice = report.GetTeamMember(report_pb2.GetTeamMemberRequest(reseller_id="alice")).member
    assert (alice.direct_downline, alice.team_size) == (1, 1)
    zed = report.GetTeamMember(report_pb2.GetTeamMemberRequest(reseller_id="zed")).member
    assert zed.team_size == 3
    dave = report.GetTeamMember(report_pb2.GetTeamMemberRequest(reseller_id="dave")).member
    assert dave.depth == 2
    assert list(report.GetUpline(report_pb2.GetUplineRequest(reseller_id="dave")).upline) == [
        "carol", "zed"]
    assert list(report.GetUpline(report_pb2.GetUplineRequest(
        reseller_id="dave", as_of=ts(before_move))).upline) == ["carol", "bob", "alice"]
    subtree = report.ListSubtree(report_pb2.ListSubtreeRequest(reseller_id="alice",
                                                               as_of=ts(before_move)))
    assert [(m.reseller_id, m.level) for m in subtree.members] == [
        ("bob", 1), ("carol", 2), ("dave", 3), ("erin", 3)]
    first = report.ListSubtree(report_pb2.ListSubtreeRequest(reseller_id="zed", max_depth=1))
    assert [m.reseller_id for m in first.members] == ["carol"]
    paged = report.ListSubtree(report_pb2.ListSubtreeRequest(reseller_id="zed", page_size=2))
    more = report.ListSubtree(report_pb2.ListSubtreeRequest(
        reseller_id="zed", page_size=2, page_token=paged.next_page_token))
    assert [m.reseller_id for m in [*paged.members, *more.members]] == ["carol", "dave", "erin"]
    missing = refused(lambda: report.GetTeamMember(
        report_pb2.GetTeamMemberRequest(reseller_id="ghost")))
    assert missing.code == StatusCode.NOT_FOUND


def test_subtree_pages_do_not_skip_members_when_others_move_away_between_pages(
        shop: LedgerClient, admin: LedgerClient) -> None:
    team(shop)  # alice ← bob ← carol
    enroll(shop, "dave", "bob")
    enroll(shop, "erin", "bob")
    enrolled = shop.storefront.EnrollReseller(storefront_pb2.EnrollResellerRequest(
        idempotency_key=idempotency_key(), reseller_id="zed", without_sponsor=True))
    report = shop.report
    first = report.ListSubtree(report_pb2.ListSubtreeRequest(
        reseller_id="alice", page_size=2, min_log_position=enrolled.receipt.log_position))
    assert [m.reseller_id for m in first.members] == ["bob", "carol"]
    position = admin.admin.MoveReseller(admin_pb2.MoveResellerRequest(
        idempotency_key=idempotency_key(), reseller_id="carol", new_sponsor_id="zed",
        reason="restructure")).receipt.log_position
    rest = report.ListSubtree(report_pb2.ListSubtreeRequest(
        reseller_id="alice", page_size=2, page_token=first.next_page_token,
        min_log_position=position))
    assert [m.reseller_id for m in rest.members] == ["dave", "erin"]


def test_team_stats_answer_every_figure_and_refuse_a_month_not_written_yyyy_mm(
        shop: LedgerClient, admin: LedgerClient, clock: Clock) -> None:
    """That GetTeamStats answers each figure, and checks the month it is asked for; the
    figures' rules are tests/integration/test_team_numbers.py's."""
    team(shop)  # alice ← bob ← carol
    admin.admin.SetTeamTarget(admin_pb2.SetTeamTargetRequest(
        idempotency_key=idempotency_key(), reseller_id="alice", month="2026-12",
        currency="CNY", amount=40000))
    clock.advance(days=30)  # 2026-12-01
    enroll(shop, "erin", "carol")  # new in December
    place(shop, "O1", reseller="carol", customer="c1")
    position = shop.storefront.PayOrder(storefront_pb2.PayOrderRequest(
        idempotency_key=idempotency_key(), order_id="O1", payment_id="w-O1",
        amount=9999)).receipt.log_position
    december = shop.report.GetTeamStats(report_pb2.GetTeamStatsRequest(
        reseller_id="alice", month="2026-12", min_log_position=position))
    [cny] = december.sales
    assert (cny.currency, cny.own_sales, cny.team_gmv, cny.target, cny.progress_bps) == (
        "CNY", 0, 9999, 40000, 2499)
    assert (december.reseller_id, december.month) == ("alice", "2026-12")
    assert (december.new_members, december.members_at_start, december.active_members,
            december.retention_bps) == (1, 2, 1, 5000)
    bad = refused(lambda: shop.report.GetTeamStats(report_pb2.GetTeamStatsRequest(
        reseller_id="alice", month="12/2026")))
    assert "month" in bad.fields


def test_read_waits_for_its_position_within_the_deadline(store_url: str, clock: Clock) -> None:
    """With the read models kept by a projector that is not running, a write's position is
    in the log but never applied: the read waits for it, then fails with DEADLINE_EXCEEDED."""
    keys = Keys()
    server = LedgerServer(Settings(database_url=store_url, listen="127.0.0.1:0",
                                   projections="external"), keys.ring(), clock=clock)
    with ServerThread(server) as thread, LedgerClient(thread.target, keys.shop_a) as shop:
        enroll(shop, "alice")
        written = shop.report.GetProjectionStatus(report_pb2.GetProjectionStatusRequest())
        assert written.processed_position < written.log_position
        late = refused(lambda: shop.report.GetBalance(report_pb2.GetBalanceRequest(
            account="platform", min_log_position=written.log_position), timeout=0.3))
        assert late.code == StatusCode.DEADLINE_EXCEEDED


def test_other_platforms_read_nothing_of_ours(running: Running) -> None:
    with running.client(running.keys.shop_a) as shop, \
            running.client(running.keys.other_platform_shop) as other:
        team(shop)
        place(shop, "O1")
        position = shop.storefront.PayOrder(storefront_pb2.PayOrderRequest(
            idempotency_key=idempotency_key(), order_id="O1", payment_id="w",
            amount=9999)).receipt.log_position
        assert balance(other, "reseller:carol", position) == {}
        assert not other.report.ListBalances(report_pb2.ListBalancesRequest()).balances


def test_a_read_after_a_position_no_write_reached_is_refused_at_once(shop: LedgerClient
                                                                      ) -> None:
    """A receipt is handed out after its write committed, so a min_log_position past the
    log's end is a client's bug: it gets INVALID_ARGUMENT at once, not a wait until its
    deadline. A negative one is refused likewise."""
    team(shop)
    place(shop, "O1")
    head = shop.report.GetProjectionStatus(report_pb2.GetProjectionStatusRequest()).log_position
    for position in (head + 1_000, 2**63 - 1, -1):
        no = refused(lambda p=position: shop.report.GetBalance(report_pb2.GetBalanceRequest(
            account="reseller:carol", min_log_position=p), timeout=30))
        assert no.code == StatusCode.INVALID_ARGUMENT
        assert "min_log_position" in no.fields
    assert balance(shop, "reseller:carol", head) == {}
