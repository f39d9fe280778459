"""Settlement, clawback and payouts over gRPC: the money leaves exactly once."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import grpc
from ledger.clients.sdk import LedgerClient, idempotency_key

from ledger.v1 import admin_pb2, common_pb2, finance_pb2, report_pb2, storefront_pb2
from tests.conftest import Clock, Running
from tests.helpers import identify, place, refund, refused, team

StatusCode = grpc.StatusCode
LEDGER = str(Path(sys.executable).parent / "ledger")


class Books:
    """Reads balances after the last write, so every check sees every write before it."""

    def __init__(self, shop: LedgerClient) -> None:
        self.shop = shop
        self.position = 0

    def saw(self, receipt: object) -> None:
        self.position = max(self.position, receipt.log_position)  # type: ignore[attr-defined]

    def of(self, account: str) -> dict[str, int]:
        reply = self.shop.report.GetBalance(report_pb2.GetBalanceRequest(
            account=account, min_log_position=self.position), timeout=10)
        if not reply.balances:
            return {}
        [b] = reply.balances
        return {k: v for k, v in (("frozen", b.frozen), ("available", b.available),
                                  ("in_flight", b.in_flight), ("paid_out", b.paid_out),
                                  ("debt", b.debt)) if v}


def sell(shop: LedgerClient, books: Books, order_id: str) -> None:
    place(shop, order_id)
    books.saw(shop.storefront.PayOrder(storefront_pb2.PayOrderRequest(
        idempotency_key=idempotency_key(), order_id=order_id, payment_id=f"w-{order_id}",
        amount=9999)).receipt)
    books.saw(shop.storefront.CompleteOrder(storefront_pb2.CompleteOrderRequest(
        idempotency_key=idempotency_key(), order_id=order_id)).receipt)


def settle(admin: LedgerClient, books: Books) -> list[str]:
    reply = admin.admin.RunSettlement(admin_pb2.RunSettlementRequest(
        idempotency_key=idempotency_key()))
    books.saw(reply.receipt)
    assert list(reply.settled_order_ids) == [o.order_id for o in reply.settled_orders]
    return [o.order_id for o in reply.settled_orders]


def withdraw(shop: LedgerClient, reseller: str, amount: int,
             books: Books | None = None) -> finance_pb2.Payout:
    reply = shop.storefront.RequestWithdrawal(storefront_pb2.RequestWithdrawalRequest(
        idempotency_key=idempotency_key(), reseller_id=reseller, currency="CNY",
        amount=amount))
    if books is not None:
        books.saw(reply.receipt)
    return reply.payout


def pay_out(finance: LedgerClient, payout_id: str, books: Books, reference: str) -> None:
    """Finance approves the payout, then marks it paid with the rail's reference."""
    finance.finance.ApprovePayout(finance_pb2.ApprovePayoutRequest(
        idempotency_key=idempotency_key(), payout_id=payout_id))
    books.saw(finance.finance.MarkPayoutPaid(finance_pb2.MarkPayoutPaidRequest(
        idempotency_key=idempotency_key(), payout_id=payout_id, reference=reference)).receipt)


def test_worked_example_through_settlement_payout_clawback_and_recovery(
    shop: LedgerClient, admin: LedgerClient, finance: LedgerClient, clock: Clock,
) -> None:
    books = Books(shop)
    team(shop)
    identify(finance, "carol")
    sell(shop, books, "O1")
    assert books.of("reseller:carol") == {"frozen": 1599}
    # Inside the freeze window nothing moves.
    clock.advance(days=6, hours=23)
    assert settle(admin, books) == []
    assert books.of("reseller:carol") == {"frozen": 1599}
    clock.advance(hours=1)
    assert settle(admin, books) == ["O1"]
    assert books.of("reseller:carol") == {"available": 1599}
    assert books.of("reseller:bob") == {"available": 399}
    assert books.of("supplier:S1") == {"available": 6000}
    assert books.of("platform") == {"available": 2001}
    assert settle(admin, books) == []  # settling again moves nothing twice
    assert books.of("reseller:carol") == {"available": 1599}

    # Carol withdraws 15.00: it leaves available at once.
    payout = withdraw(shop, "carol", 1500, books)
    assert payout.status == finance_pb2.PAYOUT_STATUS_REQUESTED
    assert payout.payout_id.startswith("PO") and len(payout.payout_id) == 32
    assert payout.payout_id.isalnum()
    assert books.of("reseller:carol") == {"available": 99, "in_flight": 1500}
    payable = finance.finance.ListPayable(finance_pb2.ListPayableRequest(
        min_log_position=books.position)).payouts
    assert [(p.payout_id, p.amount) for p in payable] == [(payout.payout_id, 1500)]
    approved = finance.finance.ApprovePayout(finance_pb2.ApprovePayoutRequest(
        idempotency_key=idempotency_key(), payout_id=payout.payout_id))
    assert approved.payout.status == finance_pb2.PAYOUT_STATUS_APPROVED
    paid = finance.finance.MarkPayoutPaid(finance_pb2.MarkPayoutPaidRequest(
        idempotency_key=idempotency_key(), payout_id=payout.payout_id, reference="wx-777"))
    books.saw(paid.receipt)
    assert (paid.payout.status, paid.payout.reference) == (finance_pb2.PAYOUT_STATUS_PAID,
                                                           "wx-777")
    assert books.of("reseller:carol") == {"available": 99, "paid_out": 1500}

    # A late refund of one unit claws back 5.33 from carol: she now owes 4.34.
    books.saw(refund(shop, "O1", "r1", (1, 3333)).receipt)
    assert books.of("reseller:carol") == {"debt": 434, "paid_out": 1500}
    assert books.of("reseller:bob") == {"available": 266}
    assert books.of("supplier:S1") == {"available": 4000}
    assert books.of("platform") == {"available": 1334}
    in_debt = refused(lambda: withdraw(shop, "carol", 1000))
    assert (in_debt.code, in_debt.reason) == (StatusCode.FAILED_PRECONDITION, "ACCOUNT_IN_DEBT")

    # The next order's commission pays the debt first.
    sell(shop, books, "O2")
    assert books.of("reseller:carol") == {"frozen": 1599, "debt": 434, "paid_out": 1500}
    clock.advance(days=8)
    assert settle(admin, books) == ["O2"]
    assert books.of("reseller:carol") == {"available": 1165, "paid_out": 1500}
    assert books.of("reseller:bob") == {"available": 665}
    everyone = shop.report.ListBalances(report_pb2.ListBalancesRequest(
        min_log_position=books.position))
    assert sum(b.frozen + b.available - b.debt + b.in_flight + b.paid_out + b.clearing
               for b in everyone.balances) == 0


def test_two_storefronts_same_numbered_orders_are_settled_each_once_and_named_apart(
    running: Running, shop: LedgerClient, admin: LedgerClient, finance: LedgerClient,
    clock: Clock,
) -> None:
    """Shop-a and shop-b each sell an O1 through carol: two orders, due together, each
    settled once, each named with its storefront in statements, both in carol's numbers."""
    books = Books(shop)
    team(shop)
    with running.client(running.keys.shop_b) as shop_b:
        sell(shop, books, "O1")
        sell(shop_b, books, "O1")
    clock.advance(days=8)
    request = admin_pb2.RunSettlementRequest(idempotency_key="settle-both")
    reply = admin.admin.RunSettlement(request)
    books.saw(reply.receipt)
    assert sorted((o.storefront_id, o.order_id) for o in reply.settled_orders) == [
        ("shop-a", "O1"), ("shop-b", "O1")]
    assert list(reply.settled_order_ids) == ["O1", "O1"]
    assert admin.admin.RunSettlement(request) == admin_pb2.RunSettlementResponse(
        settled_order_ids=reply.settled_order_ids, settled_orders=reply.settled_orders,
        receipt=common_pb2.WriteReceipt(log_position=reply.receipt.log_position,
                                        replayed=True))
    assert settle(admin, books) == []
    assert books.of("reseller:carol") == {"available": 2 * 1599}

    history = finance.finance.GetAccountStatement(finance_pb2.GetAccountStatementRequest(
        account="reseller:carol", from_day="2026-11-01", to_day="2026-11-09",
        min_log_position=books.position))
    assert sorted((m.kind, m.bucket, m.amount, m.source) for m in history.movements) == [
        ("payment", "frozen", 1599, "order:shop-a/O1"),
        ("payment", "frozen", 1599, "order:shop-b/O1"),
        ("settlement", "available", 1599, "order:shop-a/O1"),
        ("settlement", "available", 1599, "order:shop-b/O1"),
        ("settlement", "frozen", -1599, "order:shop-a/O1"),
        ("settlement", "frozen", -1599, "order:shop-b/O1")]
    stats = shop.report.GetTeamStats(report_pb2.GetTeamStatsRequest(
        reseller_id="carol", month="2026-11", min_log_position=books.position))
    assert (stats.sales[0].own_sales, stats.sales[0].team_gmv) == (2 * 9999, 2 * 9999)


def test_a_payout_is_not_approved_while_a_clawback_left_its_account_in_debt(
    shop: LedgerClient, admin: LedgerClient, finance: LedgerClient, clock: Clock,
) -> None:
    """Carol asks for 15.00; before finance approves, a refund claws back all of her 15.99
    (she owes 15.00). Approving would pay out money she owes back, so it is refused; rejected,
    the 15.00 returns to available and repays the debt."""
    books = Books(shop)
    team(shop)
    identify(finance, "carol")
    sell(shop, books, "O1")
    clock.advance(days=8)
    assert settle(admin, books) == ["O1"]
    payout = withdraw(shop, "carol", 1500, books)
    books.saw(refund(shop, "O1", "r1", (1, 9999)).receipt)
    assert books.of("reseller:carol") == {"debt": 1500, "in_flight": 1500}
    fin = finance.finance
    no = refused(lambda: fin.ApprovePayout(finance_pb2.ApprovePayoutRequest(
        idempotency_key=idempotency_key(), payout_id=payout.payout_id)))
    assert (no.code, no.reason) == (StatusCode.FAILED_PRECONDITION, "ACCOUNT_IN_DEBT")
    still = fin.GetPayout(finance_pb2.GetPayoutRequest(payout_id=payout.payout_id)).payout
    assert still.status == finance_pb2.PAYOUT_STATUS_REQUESTED
    books.saw(fin.RejectPayout(finance_pb2.RejectPayoutRequest(
        idempotency_key=idempotency_key(), payout_id=payout.payout_id,
        reason="clawed back")).receipt)
    assert books.of("reseller:carol") == {}


def test_open_after_sales_case_holds_settlement_past_the_window(
    shop: LedgerClient, admin: LedgerClient, clock: Clock,
) -> None:
    books = Books(shop)
    team(shop)
    sell(shop, books, "O1")
    shop.storefront.OpenAfterSale(storefront_pb2.OpenAfterSaleRequest(
        idempotency_key=idempotency_key(), order_id="O1", case_id="k1", line_no=1,
        reason="broken lid"))
    clock.advance(days=30)
    assert settle(admin, books) == []
    books.saw(shop.storefront.CloseAfterSale(storefront_pb2.CloseAfterSaleRequest(
        idempotency_key=idempotency_key(), order_id="O1", case_id="k1",
        resolution="replaced")).receipt)
    assert settle(admin, books) == ["O1"]
    assert books.of("reseller:carol") == {"available": 1599}


def test_payout_steps_are_idempotent_and_refused_in_the_wrong_state(
    shop: LedgerClient, admin: LedgerClient, finance: LedgerClient, clock: Clock,
) -> None:
    books = Books(shop)
    team(shop)
    identify(finance, "carol")
    sell(shop, books, "O1")
    clock.advance(days=8)
    settle(admin, books)
    fin = finance.finance
    below = refused(lambda: withdraw(shop, "carol", 999))
    assert below.reason == "BELOW_MINIMUM_PAYOUT"
    above = refused(lambda: withdraw(shop, "carol", 1600))
    assert above.reason == "INSUFFICIENT_AVAILABLE"
    supplier = refused(lambda: shop.storefront.RequestWithdrawal(
        storefront_pb2.RequestWithdrawalRequest(idempotency_key="k", reseller_id="nobody",
                                                currency="CNY", amount=1000)))
    assert supplier.code == StatusCode.NOT_FOUND
    as_shop = refused(lambda: shop.finance.RequestPayout(finance_pb2.RequestPayoutRequest(
        idempotency_key="k", account="supplier:S1", currency="CNY", amount=1000)))
    assert as_shop.code == StatusCode.PERMISSION_DENIED

    # The supplier's payout, through finance: requested, rejected (money back).
    request = finance_pb2.RequestPayoutRequest(idempotency_key="sup-1", account="supplier:S1",
                                               currency="CNY", amount=5000)
    first = fin.RequestPayout(request)
    again = fin.RequestPayout(request)
    assert again.payout == first.payout and again.receipt.replayed
    pid = first.payout.payout_id
    wrong = refused(lambda: fin.MarkPayoutPaid(finance_pb2.MarkPayoutPaidRequest(
        idempotency_key=idempotency_key(), payout_id=pid, reference="x")))
    assert (wrong.code, wrong.reason) == (StatusCode.FAILED_PRECONDITION, "PAYOUT_REQUESTED")
    books.saw(fin.RejectPayout(finance_pb2.RejectPayoutRequest(
        idempotency_key=idempotency_key(), payout_id=pid, reason="bank details missing")).receipt)
    twice = fin.RejectPayout(finance_pb2.RejectPayoutRequest(
        idempotency_key=idempotency_key(), payout_id=pid, reason="double click"))
    assert twice.payout.status == finance_pb2.PAYOUT_STATUS_REJECTED
    assert books.of("supplier:S1") == {"available": 6000}

    # Carol's: approved twice (a double click), then the rail fails it: money back.
    payout = withdraw(shop, "carol", 1200)
    for _ in range(2):
        fin.ApprovePayout(finance_pb2.ApprovePayoutRequest(
            idempotency_key=idempotency_key(), payout_id=payout.payout_id))
    failed = fin.MarkPayoutFailed(finance_pb2.MarkPayoutFailedRequest(
        idempotency_key=idempotency_key(), payout_id=payout.payout_id, reason="card closed"))
    books.saw(failed.receipt)
    assert failed.payout.status == finance_pb2.PAYOUT_STATUS_FAILED
    assert books.of("reseller:carol") == {"available": 1599}
    late = refused(lambda: fin.MarkPayoutPaid(finance_pb2.MarkPayoutPaidRequest(
        idempotency_key=idempotency_key(), payout_id=payout.payout_id, reference="wx")))
    assert late.reason == "PAYOUT_FAILED"
    got = fin.GetPayout(finance_pb2.GetPayoutRequest(payout_id=payout.payout_id)).payout
    assert got.reason == "card closed"
    missing = refused(lambda: fin.GetPayout(finance_pb2.GetPayoutRequest(payout_id="PO0")))
    assert missing.code == StatusCode.NOT_FOUND
    not_finance = refused(lambda: admin.finance.ListPayable(finance_pb2.ListPayableRequest()))
    assert not_finance.code == StatusCode.PERMISSION_DENIED


def test_closed_day_statement_is_final_and_late_refunds_land_in_the_open_day(
    shop: LedgerClient, admin: LedgerClient, finance: LedgerClient, clock: Clock,
) -> None:
    # The clock starts at 2026-11-01 10:00 in Shanghai.
    books = Books(shop)
    team(shop)
    sell(shop, books, "O1")
    fin = finance.finance
    too_early = refused(lambda: fin.CloseDay(finance_pb2.CloseDayRequest(
        idempotency_key=idempotency_key(), day="2026-11-01")))
    assert (too_early.code, too_early.reason) == (StatusCode.FAILED_PRECONDITION,
                                                  "PERIOD_NOT_OVER")
    clock.advance(days=1)
    close = finance_pb2.CloseDayRequest(idempotency_key="close-11-01", day="2026-11-01")
    closed = fin.CloseDay(close)
    statement = closed.statement
    assert statement.closed and statement.timezone == "Asia/Shanghai"
    lines = {(line.account, line.currency): line for line in statement.lines}
    carol = lines[("reseller:carol", "CNY")]
    assert (carol.opening, carol.closing) == (0, 1599)
    assert [(m.kind, m.amount) for m in carol.movements] == [("payment", 1599)]
    assert lines[("clearing:customer-funds", "CNY")].closing == -9999
    assert sum(line.closing for line in statement.lines) == 0
    assert fin.CloseDay(close).statement == statement  # a retry replays the first answer
    again = refused(lambda: fin.CloseDay(finance_pb2.CloseDayRequest(
        idempotency_key=idempotency_key(), day="2026-11-01")))
    assert again.code == StatusCode.ALREADY_EXISTS

    # A refund of the closed day's order lands in the open day, as a correction.
    books.saw(refund(shop, "O1", "r1", (1, 3333)).receipt)
    stored = fin.GetDayStatement(finance_pb2.GetDayStatementRequest(day="2026-11-01"))
    assert stored.statement == statement
    today = fin.GetDayStatement(finance_pb2.GetDayStatementRequest(
        day="2026-11-02", min_log_position=books.position)).statement
    assert not today.closed
    carol_today = {(x.account): x for x in today.lines}["reseller:carol"]
    assert (carol_today.opening, carol_today.closing) == (1599, 1066)
    assert [(m.kind, m.amount) for m in carol_today.movements] == [("refund", -533)]

    history = fin.GetAccountStatement(finance_pb2.GetAccountStatementRequest(
        account="reseller:carol", from_day="2026-11-01", to_day="2026-11-02",
        min_log_position=books.position))
    assert [(m.kind, m.amount, m.source) for m in history.movements] == [
        ("payment", 1599, "order:shop-a/O1"), ("refund", -533, "order:shop-a/O1/refund:r1")]
    assert [(t.opening, t.closing) for t in history.totals] == [(0, 1066)]
    bad = refused(lambda: fin.GetAccountStatement(finance_pb2.GetAccountStatementRequest(
        account="reseller:carol", from_day="2026-11-02", to_day="2026-11-01")))
    assert "to_day" in bad.fields

    # Days close in order: skipping 11-02 would shut it with no statement.
    clock.advance(days=2)  # 11-03 is over too
    skipped = refused(lambda: fin.CloseDay(finance_pb2.CloseDayRequest(
        idempotency_key=idempotency_key(), day="2026-11-03")))
    assert (skipped.code, skipped.reason) == (StatusCode.FAILED_PRECONDITION,
                                              "PERIOD_OUT_OF_ORDER")
    assert "2026-11-02" in skipped.message
    for day in ("2026-11-02", "2026-11-03"):
        closed_day = fin.CloseDay(finance_pb2.CloseDayRequest(
            idempotency_key=idempotency_key(), day=day)).statement
        assert closed_day.closed and closed_day.day == day
    opened = {x.account: x.opening for x in fin.GetDayStatement(
        finance_pb2.GetDayStatementRequest(day="2026-11-03")).statement.lines}
    assert opened["reseller:carol"] == 1066  # where 11-02 closed


def test_day_statements_show_settlements_and_payouts_bucket_by_bucket(
    shop: LedgerClient, admin: LedgerClient, finance: LedgerClient, clock: Clock,
) -> None:
    """A settlement and a payout move money between an account's own buckets. One line per
    account netted them to nothing, and kept paid-out money in its closing balance; a line
    per bucket shows each, and what the account is still owed."""
    books = Books(shop)
    team(shop)
    identify(finance, "carol")
    sell(shop, books, "O1")  # 2026-11-01 in Shanghai
    clock.advance(days=8)  # 2026-11-09
    assert settle(admin, books) == ["O1"]
    payout = withdraw(shop, "carol", 1500, books)
    fin = finance.finance
    pay_out(finance, payout.payout_id, books, "wx-1")
    day = fin.GetDayStatement(finance_pb2.GetDayStatementRequest(
        day="2026-11-09", min_log_position=books.position)).statement
    carol = {x.bucket: (x.opening, [(m.kind, m.amount) for m in x.movements], x.closing)
             for x in day.lines if x.account == "reseller:carol"}
    assert carol == {
        "frozen": (1599, [("settlement", -1599)], 0),
        "available": (0, [("payout_requested", -1500), ("settlement", 1599)], 99),
        "in_flight": (0, [("payout_paid", -1500), ("payout_requested", 1500)], 0),
        "paid_out": (0, [("payout_paid", 1500)], 1500),
    }
    owed = sum(x.closing for x in day.lines if x.account == "reseller:carol"
               and x.bucket in ("frozen", "available", "in_flight"))
    assert owed == 99 and sum(x.closing for x in day.lines) == 0
    history = fin.GetAccountStatement(finance_pb2.GetAccountStatementRequest(
        account="reseller:carol", from_day="2026-11-09", to_day="2026-11-09",
        min_log_position=books.position))
    assert {t.bucket: t.closing for t in history.totals} == {
        "frozen": 0, "available": 99, "in_flight": 0, "paid_out": 1500}


def test_finance_cli_exports_csv_a_spreadsheet_opens(
    running: Running, shop: LedgerClient, admin: LedgerClient, finance: LedgerClient,
    clock: Clock, tmp_path: Path,
) -> None:
    books = Books(shop)
    team(shop)
    identify(finance, "carol")
    sell(shop, books, "O1")
    clock.advance(days=8)
    settle(admin, books)
    payout = withdraw(shop, "carol", 1234, books)
    finance.finance.ListPayable(finance_pb2.ListPayableRequest(min_log_position=books.position))
    base = [LEDGER, "finance", "--address", running.target, "--key", running.keys.finance]

    payable = tmp_path / "payable.csv"
    done = subprocess.run([*base, "payable", "--csv", str(payable)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(payable.open(encoding="utf-8-sig")))
    assert [(r["payout_id"], r["account"], r["currency"], r["amount"], r["status"])
            for r in rows] == [(payout.payout_id, "reseller:carol", "CNY", "12.34",
                                "requested")]

    day = tmp_path / "day.csv"
    done = subprocess.run([*base, "statement", "--day", "2026-11-01", "--csv", str(day)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = {r["account"]: r for r in csv.DictReader(day.open(encoding="utf-8-sig"))}
    assert lines["reseller:carol"]["payment"] == "15.99"
    assert lines["reseller:carol"]["closing"] == "15.99"
    assert lines["clearing:customer-funds"]["closing"] == "-99.99"

    shown = subprocess.run([*base, "account", "reseller:carol", "--from", "2026-11-01",
                            "--to", "2026-11-30"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "payment" in shown.stdout and "order:shop-a/O1" in shown.stdout
    assert "payout_requested" in shown.stdout and "-12.34 CNY" in shown.stdout

    denied = subprocess.run([LEDGER, "finance", "--address", running.target, "--key",
                             running.keys.shop_a, "payable"], capture_output=True, text=True,
                            timeout=60)
    assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr


def test_settlement_runs_on_its_own_schedule_inside_the_server(
    store_url: str, clock: Clock,
) -> None:
    from ledger.api.server import LedgerServer, ServerThread
    from ledger.config import Settings
    from tests.conftest import Keys

    keys = Keys()
    settings = Settings(database_url=store_url, listen="127.0.0.1:0", settlement_interval=0.1)
    with ServerThread(LedgerServer(settings, keys.ring(), clock=clock)) as running, \
            LedgerClient(running.target, keys.shop_a) as shop:
        books = Books(shop)
        team(shop)
        sell(shop, books, "O1")
        clock.advance(days=7, seconds=1)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            order = shop.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id="O1"))
            status = shop.report.GetBalance(report_pb2.GetBalanceRequest(
                account="reseller:carol"))
            if status.balances and status.balances[0].available == 1599:
                break
            time.sleep(0.1)
        assert order.order.status == common_pb2.ORDER_STATUS_COMPLETED
        assert books.of("reseller:carol") == {"available": 1599}


def test_backfilled_orders_keep_their_dates_and_never_land_in_a_closed_day(
    shop: LedgerClient, admin: LedgerClient, finance: LedgerClient, clock: Clock,
) -> None:
    """ImportOrders with each step's own time: the money lands on the day it was paid, the
    freeze window runs from when it was completed, and closed days and the future stay shut."""
    from datetime import UTC, datetime

    from google.protobuf.timestamp_pb2 import Timestamp
    from ledger.clients.simulator import line

    def at(day: int, hour: int, month: int = 11) -> Timestamp:
        stamp = Timestamp()
        stamp.FromDatetime(datetime(2026, month, day, hour, tzinfo=UTC))
        return stamp

    team(shop)
    clock.advance(days=30)  # now 2026-12-01 02:00 UTC
    fin = finance.finance
    fin.CloseDay(finance_pb2.CloseDayRequest(idempotency_key="close-11-02", day="2026-11-02"))

    def imported(order_id: str, **times: Timestamp) -> storefront_pb2.ImportedOrder:
        return storefront_pb2.ImportedOrder(
            order_id=order_id, customer_id=f"c-{order_id}", reseller_id="carol",
            currency="CNY", lines=[line("tea", 3, 3333, 2000)], payment_id=f"w-{order_id}",
            completed=True, **times)

    reply = shop.storefront.ImportOrders(iter([storefront_pb2.ImportOrdersRequest(orders=[
        imported("H1", placed_at=at(10, 1), paid_at=at(10, 2), completed_at=at(12, 3)),
        imported("H2", paid_at=at(2, 4)),  # 2026-11-02 12:00 in Shanghai: closed
        imported("H3", placed_at=at(1, 3, month=12)),  # an hour from now
        imported("H4", paid_at=at(12, 1), completed_at=at(11, 1)),
        # A completion dated without its payment would be paid now, after it was completed.
        imported("H5", completed_at=at(11, 1)),
        imported("H6", paid_at=at(20, 1)),  # placed when paid, not now (after the payment)
    ])]))
    assert reply.imported == 2
    assert [(f.order_id, f.code) for f in reply.failures] == [
        ("H2", "FAILED_PRECONDITION"), ("H3", "INVALID_ARGUMENT"), ("H4", "INVALID_ARGUMENT"),
        ("H5", "INVALID_ARGUMENT")]
    assert "PERIOD_CLOSED" in reply.failures[0].message or "closed" in reply.failures[0].message
    assert "completed_at" in reply.failures[2].message
    assert "completed_at" in reply.failures[3].message
    h6 = shop.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id="H6")).order
    assert h6.placed_at == h6.paid_at == h6.completed_at == at(20, 1)
    order = shop.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id="H1")).order
    assert (order.placed_at, order.paid_at, order.completed_at) == (at(10, 1), at(10, 2),
                                                                     at(12, 3))
    books = Books(shop)
    books.saw(reply.receipt)
    day = fin.GetDayStatement(finance_pb2.GetDayStatementRequest(
        day="2026-11-10", min_log_position=books.position)).statement
    carol = {x.account: x for x in day.lines}["reseller:carol"]
    assert [(m.kind, m.amount) for m in carol.movements] == [("payment", 1599)]
    # Completed on 11-12 and 11-20: their seven frozen days are over, so they settle at once.
    assert settle(admin, books) == ["H1", "H6"]
    assert books.of("reseller:carol") == {"available": 2 * 1599}


def test_payable_pages_do_not_skip_payouts_finance_handled_in_between(
    shop: LedgerClient, admin: LedgerClient, finance: LedgerClient, clock: Clock,
) -> None:
    """Finance lists a page of payable payouts, pays them (they leave the list), and asks for
    the next page: it must start after the last one listed, not skip as many as were paid."""
    books = Books(shop)
    team(shop)
    identify(finance, "carol")
    identify(finance, "bob")
    for n in range(3):
        sell(shop, books, f"O{n}")
    clock.advance(days=8)
    settle(admin, books)
    fin = finance.finance
    made = []
    for account, amount in (("carol", 1000), ("bob", 1000), ("carol", 1000), ("carol", 1200)):
        made.append(withdraw(shop, account, amount, books).payout_id)
        clock.advance(seconds=1)
    first = fin.ListPayable(finance_pb2.ListPayableRequest(
        page_size=2, min_log_position=books.position))
    assert [p.payout_id for p in first.payouts] == made[:2] and first.next_page_token
    for payout in first.payouts:
        pay_out(finance, payout.payout_id, books, "wx")
    second = fin.ListPayable(finance_pb2.ListPayableRequest(
        page_size=2, page_token=first.next_page_token, min_log_position=books.position))
    assert [p.payout_id for p in second.payouts] == made[2:]
    last = fin.ListPayable(finance_pb2.ListPayableRequest(
        page_size=2, page_token=second.next_page_token))
    assert not last.payouts and not last.next_page_token
    bad = refused(lambda: fin.ListPayable(finance_pb2.ListPayableRequest(
        page_token="not-a-token")))
    assert "page_token" in bad.fields
