"""Settlement, clawback and payouts over gRPC: what the API answers, its pages, the finance
CLI, two storefronts' orders named apart, and the server's own schedule. The rules (the
money leaves exactly once) are tested on the application in
tests/integration/test_settlement_rules.py."""

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


def test_payout_calls_answer_replays_whole_and_belong_to_finance_keys(
    shop: LedgerClient, admin: LedgerClient, finance: LedgerClient, clock: Clock,
) -> None:
    """What the API adds to the payout rules (those are tests/integration/
    test_settlement_rules.py's): a replay answers the first payout whole, a withdrawal names
    a reseller, payouts are finance's calls, and a payout it does not know is NOT_FOUND."""
    books = Books(shop)
    team(shop)
    sell(shop, books, "O1")
    clock.advance(days=8)
    settle(admin, books)
    fin = finance.finance
    supplier = refused(lambda: shop.storefront.RequestWithdrawal(
        storefront_pb2.RequestWithdrawalRequest(idempotency_key="k", reseller_id="nobody",
                                                currency="CNY", amount=1000)))
    assert supplier.code == StatusCode.NOT_FOUND
    as_shop = refused(lambda: shop.finance.RequestPayout(finance_pb2.RequestPayoutRequest(
        idempotency_key="k", account="supplier:S1", currency="CNY", amount=1000)))
    assert as_shop.code == StatusCode.PERMISSION_DENIED
    request = finance_pb2.RequestPayoutRequest(idempotency_key="sup-1", account="supplier:S1",
                                               currency="CNY", amount=5000)
    first = fin.RequestPayout(request)
    again = fin.RequestPayout(request)
    assert again.payout == first.payout and again.receipt.replayed
    assert first.payout.status == finance_pb2.PAYOUT_STATUS_REQUESTED
    missing = refused(lambda: fin.GetPayout(finance_pb2.GetPayoutRequest(payout_id="PO0")))
    assert missing.code == StatusCode.NOT_FOUND
    not_finance = refused(lambda: admin.finance.ListPayable(finance_pb2.ListPayableRequest()))
    assert not_finance.code == StatusCode.PERMISSION_DENIED


def test_a_closed_days_statement_reads_back_as_its_close_answered_it(
    shop: LedgerClient, finance: LedgerClient, clock: Clock,
) -> None:
    """CloseDay's answer, its replay, and GetDayStatement of the closed day and of the open
    day after it, as the API shows them (the closing rules are tests/integration/
    test_settlement_rules.py's and tests/integration/test_use_cases.py's)."""
    books = Books(shop)
    team(shop)
    sell(shop, books, "O1")
    fin = finance.finance
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

    books.saw(refund(shop, "O1", "r1", (1, 3333)).receipt)
    stored = fin.GetDayStatement(finance_pb2.GetDayStatementRequest(day="2026-11-01"))
    assert stored.statement == statement
    today = fin.GetDayStatement(finance_pb2.GetDayStatementRequest(
        day="2026-11-02", min_log_position=books.position)).statement
    assert not today.closed
    carol_today = {(x.account): x for x in today.lines}["reseller:carol"]
    assert (carol_today.opening, carol_today.closing) == (1599, 1066)
    assert [(m.kind, m.amount) for m in carol_today.movements] == [("refund", -533)]
    bad = refused(lambda: fin.GetAccountStatement(finance_pb2.GetAccountStatementRequest(
        account="reseller:carol", from_day="2026-11-02", to_day="2026-11-01")))
    assert "to_day" in bad.fields


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
