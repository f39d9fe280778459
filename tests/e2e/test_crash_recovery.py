"""kill -9 of a real `ledger serve`: under load, and in the middle of a day's close, of a
settlement run and of a payout's approval (landed there by failpoints, ledger/failpoints.py);
and two servers closing the same day at once.

Each test runs its own server processes over a PostgreSQL schema of its own, with the real
clock: days in the past are filled by backfilled (dated) imports.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from ledger.clients.sdk import LedgerClient
from ledger.clients.simulator import line
from ledger.projections.reader import ReadModels

from ledger.application.ledger_app import LedgerApplication
from ledger.bootstrap import build_application
from ledger.domain.payout import Payout
from ledger.domain.periods import DayStatement, PeriodBook
from ledger.v1 import (
    admin_pb2,
    common_pb2,
    finance_pb2,
    report_pb2,
    storefront_pb2,
)
from tests.conftest import Keys
from tests.processes import (
    TIMEZONE,
    Served,
    backfill,
    days_ago,
    local_noon,
    small_pool,
    wait_until,
)

pytestmark = pytest.mark.postgres


@dataclass
class Store:
    """The test's own view of the store the servers share: the event log and read models."""

    url: str  # the test's schema, as the servers are given it
    app: LedgerApplication
    models: ReadModels

    def book(self) -> PeriodBook | None:
        return self.app.find(PeriodBook.create_id("acme"))


@pytest.fixture
def store(postgres_url: str) -> Iterator[Store]:
    app = build_application(small_pool(postgres_url))
    models = ReadModels(postgres_url)
    yield Store(postgres_url, app, models)
    models.close()
    app.close()


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def served(store: Store, keys: Keys, tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path, store.url, keys)
    yield server
    server.stop()


def without_head(statement: DayStatement) -> DayStatement:
    """A recorded statement as the read models draw it: without the tree head signed when
    it was recorded."""
    return dataclasses.replace(statement, tree_size=0, tree_root="", head_signed_at_us=0,
                               head_key_id="", head_signature="")


def unavailable(call: Any) -> None:
    """The call's server died under it."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE, raised.value  # type: ignore[attr-defined]


def balance(client: LedgerClient, account: str, position: int) -> report_pb2.AccountBalance:
    [got] = client.report.GetBalance(report_pb2.GetBalanceRequest(
        account=account, min_log_position=position), timeout=60).balances
    return got


# --- kill -9 under load ----------------------------------------------------------------------


@dataclass
class Write:
    """One write as a client sent it: its key and request, and the answer if one came."""

    method: str
    request: Any
    answer: Any = None


def order_writes(round_: int, thread: int, count: int) -> list[list[Write]]:
    """Per order: place, pay, refund 1.00 of it; each with a key of its own."""
    out = []
    for n in range(count):
        oid = f"L{round_}-{thread}-{n}"
        out.append([
            Write("PlaceOrder", storefront_pb2.PlaceOrderRequest(
                idempotency_key=f"place-{oid}", order_id=oid, customer_id=f"c{thread}",
                currency="CNY", lines=[line("tea", 2, 1000, 600)])),
            Write("PayOrder", storefront_pb2.PayOrderRequest(
                idempotency_key=f"pay-{oid}", order_id=oid, payment_id=f"w-{oid}",
                amount=2000)),
            Write("RefundOrder", storefront_pb2.RefundOrderRequest(
                idempotency_key=f"refund-{oid}", order_id=oid, refund_id="r1",
                lines=[common_pb2.RefundLine(line_no=1, amount=100)])),
        ])
    return out


def send(client: LedgerClient, write: Write) -> Any:
    return getattr(client.storefront, write.method)(write.request, timeout=60)


def write_until_gone(served: Served, key: str, orders: list[list[Write]],
                     answered: threading.Semaphore) -> None:
    """One client: each order's steps in turn, until the server stops answering."""
    with served.client(key) as shop:
        for steps in orders:
            for write in steps:
                try:
                    write.answer = send(shop, write)
                except grpc.RpcError:
                    return  # the server is gone: this write and the rest unanswered
                answered.release()


def test_kill_9_under_load_loses_no_acknowledged_write_and_retries_write_nothing_twice(
        store: Store, served: Served, keys: Keys) -> None:
    """Three times: eight clients write orders, payments and refunds; the server is killed
    with SIGKILL once enough were answered. After each restart every answered write is in
    the log, and retrying every write with its key gives the first answer back for those
    answered, finishes the others, and writes nothing twice."""
    served.start()
    total = 0
    for round_ in range(3):
        answers = threading.Semaphore(0)
        orders = [order_writes(round_, t, 12) for t in range(8)]
        with ThreadPoolExecutor(8) as pool:
            clients = [pool.submit(write_until_gone, served, keys.shop_a, mine, answers)
                       for mine in orders]
            for _ in range(40):  # killed under load, once 40 writes were answered
                assert answers.acquire(timeout=120)
            served.kill()
            for done in clients:
                done.result(timeout=120)
        sent = [steps for mine in orders for steps in mine]
        total += len(sent)
        answered = [w for steps in sent for w in steps if w.answer is not None]
        assert len(answered) >= 40 and any(w.answer is None for steps in sent for w in steps)
        served.start()
        head = store.app.log_position()
        with served.client(keys.shop_a) as shop:
            # Every answered write is in the log: its position is, and the order shows it.
            for write in answered:
                assert write.answer.receipt.log_position <= head
                order = shop.storefront.GetOrder(storefront_pb2.GetOrderRequest(
                    order_id=write.request.order_id)).order
                if write.method == "PayOrder":
                    assert order.payment_id == write.request.payment_id
                if write.method == "RefundOrder":
                    assert [r.refund_id for r in order.refunds] == ["r1"]
            # Retried with its key, an answered write gives its first answer back…
            for write in answered:
                again = send(shop, write)
                assert again.receipt.replayed and again.order == write.answer.order
            assert store.app.log_position() == head  # …and writes nothing.
            # The unanswered ones are finished by their retries, each order's steps in order.
            for steps in sent:
                for write in steps:
                    if write.answer is None:
                        write.answer = send(shop, write)
            finished = store.app.log_position()
            for steps in sent:
                for write in steps:
                    assert send(shop, write).receipt.replayed
            assert store.app.log_position() == finished
    # Every order was placed, paid and refunded once: supplier S1 holds 12.00 − 0.60 of each.
    with served.client(keys.shop_a) as shop:
        s1 = balance(shop, "supplier:S1", store.app.log_position())
        assert s1.frozen == total * (1200 - 60)


# --- kill -9 in the middle of a day's close ---------------------------------------------------


CLOSE_CRASHES = {
    # failpoint: the state the close is left in (read from the log before any restart)
    "BeginClosingDay.inside_commit": "open",
    "close_day.after_begin": "shut",
    "CloseDay.inside_commit": "shut",
    "CloseDay.after_commit": "closed",
}


def state_of(book: PeriodBook | None, day: str) -> str:
    if book is not None and day in book.closed:
        return "closed"
    if book is not None and book.unfinished == day:
        return "shut"
    return "open"


@pytest.mark.parametrize("failpoint", list(CLOSE_CRASHES))
def test_kill_9_during_close_day_leaves_the_day_open_or_closed_once_with_its_whole_statement(
        store: Store, served: Served, keys: Keys, failpoint: str) -> None:
    """The process dies at each step of a close. A day left shut without its statement is
    closed by the restarted server on its own; repeating the call with its key answers with
    the statement, which is the whole day's movements, recorded once."""
    served.start(failpoints=f"{failpoint}=crash")
    day = days_ago(1).isoformat()
    with served.client(keys.shop_a) as shop:
        backfill(shop, ["D1", "D2", "D3"], days_ago(1))
    close = finance_pb2.CloseDayRequest(idempotency_key="close-yesterday", day=day)
    with served.client(keys.finance) as finance:
        unavailable(lambda: finance.finance.CloseDay(close, timeout=60))
    served.died_at_failpoint(failpoint)
    assert state_of(store.book(), day) == CLOSE_CRASHES[failpoint]

    served.start()
    with served.client(keys.finance) as finance, served.client(keys.shop_a) as shop:
        fin = finance.finance
        if CLOSE_CRASHES[failpoint] == "shut":
            # Nobody calls: the restarted server finishes the close by itself.
            wait_until(lambda: state_of(store.book(), day) == "closed",
                       "the restarted server to finish the close", 60)
        if CLOSE_CRASHES[failpoint] == "open":
            # Not shut: the day still takes a backfill, and the close then covers it.
            backfill(shop, ["D4"], days_ago(1))
        closed = fin.CloseDay(close, timeout=60)
        assert closed.receipt.replayed == (CLOSE_CRASHES[failpoint] == "closed")
        assert fin.CloseDay(close, timeout=60).statement == closed.statement  # a replay now
        statement = closed.statement
        assert statement.closed and statement.day == day
        stored = fin.GetDayStatement(finance_pb2.GetDayStatementRequest(day=day)).statement
        assert stored == statement
        # The whole day: every order paid into it, 6.00 of each owed to S1, 10.00 paid in.
        orders = 4 if CLOSE_CRASHES[failpoint] == "open" else 3
        lines = {(x.account, x.bucket): x for x in statement.lines}
        assert lines[("supplier:S1", "frozen")].closing == 600 * orders
        assert sum(x.closing for x in statement.lines
                   if x.account == "clearing:customer-funds") == -1000 * orders
        assert sum(x.closing for x in statement.lines) == 0
        # Closed once, with one statement, equal to the day's movements drawn now.
        book = store.book()
        assert book is not None and list(book.closed) == [day]
        recorded = book.closed[day]
        assert store.models.day_statement("acme", day, TIMEZONE) == without_head(recorded)
        assert statement.head.tree_size == recorded.tree_size > 0
        assert book.version == 3  # opened, shut, closed: nothing twice
        late = shop.storefront.ImportOrders(iter([storefront_pb2.ImportOrdersRequest(orders=[
            storefront_pb2.ImportedOrder(
                order_id="D9", customer_id="c9", currency="CNY",
                lines=[line("tea", 1, 1000, 600)], payment_id="w9",
                paid_at=local_noon(days_ago(1)))])]), timeout=60)
        assert late.imported == 0 and late.failures[0].code == "FAILED_PRECONDITION"


# --- kill -9 in the middle of a settlement run and of a payout's approval -------------------


@pytest.mark.parametrize("failpoint", ["RunSettlement.inside_commit",
                                       "RunSettlement.after_commit"])
def test_kill_9_during_a_settlement_run_settles_every_due_order_once(
        store: Store, served: Served, keys: Keys, failpoint: str) -> None:
    """Ten orders are due; the run dies inside its transaction (nothing settled) or just
    after it (all settled). Repeating it with its key settles each order exactly once."""
    served.start(failpoints=f"{failpoint}=crash")
    orders = [f"S{n}" for n in range(10)]
    with served.client(keys.shop_a) as shop:
        imported = backfill(shop, orders, days_ago(12), completed=days_ago(10))
    run = admin_pb2.RunSettlementRequest(idempotency_key="settle-now")
    with served.client(keys.admin) as admin:
        unavailable(lambda: admin.admin.RunSettlement(run, timeout=60))
    served.died_at_failpoint(failpoint)

    served.start()
    committed = failpoint.endswith("after_commit")
    with served.client(keys.admin) as admin, served.client(keys.shop_a) as shop:
        s1 = balance(shop, "supplier:S1", store.app.log_position())
        assert (s1.frozen, s1.available) == ((0, 6000) if committed else (6000, 0))
        again = admin.admin.RunSettlement(run, timeout=60)
        assert again.receipt.replayed == committed
        assert sorted(again.settled_order_ids) == orders
        assert admin.admin.RunSettlement(admin_pb2.RunSettlementRequest(
            idempotency_key="settle-later"), timeout=60).settled_order_ids == []
        s1 = balance(shop, "supplier:S1", store.app.log_position())
        assert (s1.frozen, s1.available) == (0, 6000)  # each order's 6.00 released once
        assert imported.receipt.log_position < again.receipt.log_position


@pytest.mark.parametrize("failpoint", ["ApprovePayout.inside_commit",
                                       "ApprovePayout.after_commit"])
def test_kill_9_during_a_payout_approval_approves_it_once(
        store: Store, served: Served, keys: Keys, failpoint: str) -> None:
    served.start(failpoints=f"{failpoint}=crash")
    with served.client(keys.shop_a) as shop:
        backfill(shop, ["P1", "P2"], days_ago(12), completed=days_ago(10))
    with served.client(keys.admin) as admin, served.client(keys.finance) as finance:
        admin.admin.RunSettlement(admin_pb2.RunSettlementRequest(idempotency_key="s"),
                                  timeout=60)
        payout = finance.finance.RequestPayout(finance_pb2.RequestPayoutRequest(
            idempotency_key="po", account="supplier:S1", currency="CNY", amount=1200),
            timeout=60).payout
        approve = finance_pb2.ApprovePayoutRequest(idempotency_key="approve",
                                                   payout_id=payout.payout_id)
        unavailable(lambda: finance.finance.ApprovePayout(approve, timeout=60))
    served.died_at_failpoint(failpoint)
    committed = failpoint.endswith("after_commit")
    stored = store.app.find(Payout.create_id("acme", payout.payout_id))
    assert stored.status == ("approved" if committed else "requested")

    served.start()
    with served.client(keys.finance) as finance, served.client(keys.shop_a) as shop:
        fin = finance.finance
        again = fin.ApprovePayout(approve, timeout=60)
        assert again.receipt.replayed == committed
        assert again.payout.status == finance_pb2.PAYOUT_STATUS_APPROVED
        fin.ApprovePayout(finance_pb2.ApprovePayoutRequest(
            idempotency_key="approve-again", payout_id=payout.payout_id), timeout=60)
        paid = fin.MarkPayoutPaid(finance_pb2.MarkPayoutPaidRequest(
            idempotency_key="paid", payout_id=payout.payout_id, reference="bank-1"), timeout=60)
        stored = store.app.find(Payout.create_id("acme", payout.payout_id))
        assert stored.version == 3  # requested, approved once, paid
        s1 = balance(shop, "supplier:S1", paid.receipt.log_position)
        assert (s1.available, s1.in_flight, s1.paid_out) == (0, 0, 1200)


# --- two servers closing the same day at once ------------------------------------------------


def test_two_servers_closing_the_same_days_at_once_close_each_once_with_one_statement(
        store: Store, keys: Keys, tmp_path: Path) -> None:
    """Two processes over one store; each close pauses after shutting the day, so both are
    in the middle at once. Each day is closed once, and both callers get its statement."""
    servers = [Served(tmp_path, store.url, keys) for _ in range(2)]
    try:
        for server in servers:
            server.start(failpoints="close_day.after_begin=sleep(500)")
        days = [days_ago(n) for n in (4, 3, 2)]
        with servers[0].client(keys.shop_a) as shop:
            for n, day in enumerate(days):
                backfill(shop, [f"R{n}-{m}" for m in range(n + 1)], day)
        clients = [server.client(keys.finance) for server in servers]
        answers: dict[str, list[finance_pb2.CloseDayResponse]] = {}
        with ThreadPoolExecutor(2) as pool:
            for day in days:
                start = threading.Barrier(2)

                def close(n: int, day: str = day.isoformat(),
                          start: threading.Barrier = start) -> finance_pb2.CloseDayResponse:
                    start.wait()
                    return clients[n].finance.CloseDay(finance_pb2.CloseDayRequest(
                        idempotency_key=f"server-{n}-{day}", day=day), timeout=60)

                answers[day.isoformat()] = list(pool.map(close, range(2)))
        book = store.book()
        assert book is not None and sorted(book.closed) == sorted(answers)
        assert book.version == 1 + 2 * len(days)  # opened, then each day shut and closed once
        for n, (day, (first, second)) in enumerate(answers.items()):
            assert first.statement == second.statement
            lines = {(x.account, x.bucket): x for x in first.statement.lines}
            assert lines[("supplier:S1", "frozen")].closing == 600 * (n + 1) * (n + 2) // 2
            recorded = book.closed[day]
            assert store.models.day_statement("acme", day, TIMEZONE) == without_head(recorded)
            assert first.statement.head.tree_size == recorded.tree_size > 0
            for n_, client in enumerate(clients):  # each caller's retry: the same answer
                again = client.finance.CloseDay(finance_pb2.CloseDayRequest(
                    idempotency_key=f"server-{n_}-{day}", day=day), timeout=60)
                assert again.receipt.replayed and again.statement == first.statement
        for client in clients:
            client.close()
    finally:
        for server in servers:
            server.stop()
