"""A close after a long history with no close before it, through gRPC: each statement reads
back as the old computation (every opening summed over all of history) gave it. The openings
before any close, and the plans, are in tests/integration/test_day_balances.py."""

from __future__ import annotations

from ledger.clients.sdk import LedgerClient

from ledger.v1 import storefront_pb2
from tests.conftest import Clock
from tests.e2e.test_day_statements import all_lines, close, pages
from tests.e2e.test_settlement_payouts import Books
from tests.helpers import place, refund, team
from tests.integration.test_day_statements import moved, reference, summary_of


def test_a_close_after_a_long_history_reads_back_as_the_old_computation(
    store_url: str, shop: LedgerClient, finance: LedgerClient, clock: Clock
) -> None:
    """Forty days of sales and refunds with no close, then the first close on day 35 and
    the days after it in order: each statement, its summary and its lines that moved are
    those the old computation (openings summed over all of history) gives, for the days
    closed and for the open day after them."""
    books = Books(shop)
    team(shop)
    for n in range(40):  # 2026-11-01 … 2026-12-10
        for reseller in ("carol", "bob"):
            oid = f"{reseller}{n}"
            place(shop, oid, reseller=reseller)
            books.saw(shop.storefront.PayOrder(storefront_pb2.PayOrderRequest(
                idempotency_key=f"p-{oid}", order_id=oid, payment_id=f"w-{oid}",
                amount=9999)).receipt)
        if n % 3 == 0:
            books.saw(refund(shop, f"carol{n}", f"r{n}", (1, 3333)).receipt)
        clock.advance(days=1)
    days = [f"2026-12-{d:02}" for d in range(5, 11)]  # days 35 … 40
    for day in days[:-1]:
        reply = close(finance, day)
        expected = reference(store_url, day)
        assert reply.statement.closed
        assert (reply.statement.moved_lines, reply.statement.moved_lines_digest) == moved(
            expected)
    for day in (*days, "2026-11-20"):
        expected = reference(store_url, day)
        assert expected.lines and all(x.opening for x in expected.lines if x.movements)
        assert all_lines(finance, day, 3, books.position) == list(expected.lines), day
        [whole] = pages(finance, day, 1000, books.position)
        statement = whole.statement
        assert (statement.movements, statement.first_position, statement.last_position,
                statement.digest) == summary_of(expected)
        assert statement.closed == (day in days[:-1])


