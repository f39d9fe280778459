"""Day statements as a read model, paged: no close records a line per account, and a
statement read a page at a time is the statement the close of old recorded in one event.

The reference is the old computation, kept here as it was (every line in one statement,
openings summed over all of history): the pages must read back exactly its lines.

The read model alone, and a close recorded the old way replayed, are in
tests/integration/test_day_statements.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ledger.clients.sdk import LedgerClient, idempotency_key
from ledger.projections.reader import ReadModels
from ledger.projections.runner import ProjectionRunner

from ledger.application.ledger_app import LedgerApplication
from ledger.domain.periods import PeriodBook, StatementLine
from ledger.v1 import finance_pb2, storefront_pb2
from tests.conftest import Clock, Running
from tests.e2e.test_settlement_payouts import Books, pay_out, settle, withdraw
from tests.helpers import identify, pay, place, refund, refused, team
from tests.integration.test_audit_replay import settle_worked_example
from tests.integration.test_day_statements import (
    close_the_old_way,
    moved,
    reference,
    summary_of,
)


def line_of(x: finance_pb2.StatementLine) -> StatementLine:
    return StatementLine(
        x.account,
        x.currency,
        x.opening,
        tuple((m.kind, m.amount) for m in x.movements),
        x.closing,
        bucket=x.bucket,
    )


def pages(
    finance: LedgerClient, day: str, size: int, position: int = 0
) -> Iterator[finance_pb2.GetDayStatementResponse]:
    token = ""
    while True:
        reply = finance.finance.GetDayStatement(
            finance_pb2.GetDayStatementRequest(
                day=day, page_size=size, page_token=token, min_log_position=position
            )
        )
        yield reply
        token = reply.next_page_token
        if not token:
            return


def all_lines(finance: LedgerClient, day: str, size: int, position: int = 0) -> list[StatementLine]:
    found = []
    for reply in pages(finance, day, size, position):
        assert len(reply.statement.lines) <= size
        found += [line_of(x) for x in reply.statement.lines]
    return found


def close(finance: LedgerClient, day: str) -> finance_pb2.CloseDayResponse:
    return finance.finance.CloseDay(
        finance_pb2.CloseDayRequest(idempotency_key=idempotency_key(), day=day)
    )


def test_a_statement_of_many_pages_reads_back_whole_and_equals_the_old_single_message_statement(
    running: Running,
    store_url: str,
    shop: LedgerClient,
    admin: LedgerClient,
    finance: LedgerClient,
    clock: Clock,
) -> None:
    """Eleven resellers selling over three days, a settlement, a payout paid and a refund:
    every day's statement, closed or open, read two lines a page, is the old statement's
    lines (and one page of a thousand is too); a close records no line."""
    books = Books(shop)
    team(shop)
    for n in range(8):
        books.saw(
            shop.storefront.EnrollReseller(
                storefront_pb2.EnrollResellerRequest(
                    idempotency_key=idempotency_key(), reseller_id=f"r{n}", sponsor_id="carol"
                )
            ).receipt
        )
    for n in range(8):  # 2026-11-01
        place(shop, f"A{n}", reseller=f"r{n}")
        pay(shop, f"A{n}")
        books.saw(
            shop.storefront.CompleteOrder(
                storefront_pb2.CompleteOrderRequest(
                    idempotency_key=idempotency_key(), order_id=f"A{n}"
                )
            ).receipt
        )
    clock.advance(days=1)  # 2026-11-02
    first = close(finance, "2026-11-01")
    assert first.statement.closed and first.statement.moved_lines > 2
    for n in range(4):
        place(shop, f"B{n}", reseller=f"r{n}")
        pay(shop, f"B{n}")
    books.saw(refund(shop, "A0", "r1", (1, 3333)).receipt)
    clock.advance(days=7)  # 2026-11-09: A* settle
    settle(admin, books)
    identify(finance, "r1")
    payout = withdraw(shop, "r1", 1000, books)
    pay_out(finance, payout.payout_id, books, "wx-1")
    for day in (
        "2026-11-02",
        "2026-11-03",
        "2026-11-04",
        "2026-11-05",
        "2026-11-06",
        "2026-11-07",
        "2026-11-08",
    ):
        close(finance, day)

    for day in ("2026-11-01", "2026-11-02", "2026-11-05", "2026-11-09"):
        expected = reference(store_url, day)
        assert len(expected.lines) > 10, day  # nine resellers, supplier, platform, clearing
        assert all_lines(finance, day, 2, books.position) == list(expected.lines), day
        assert all_lines(finance, day, 1000, books.position) == list(expected.lines), day
        [whole] = pages(finance, day, 1000, books.position)
        head = whole.statement
        assert (head.movements, head.first_position, head.last_position, head.digest) == summary_of(
            expected
        )
        assert (head.moved_lines, head.moved_lines_digest) == moved(expected)
        assert head.closed == (day != "2026-11-09")

    # What the close recorded: the summary and the digest of the lines that moved, no line.
    book = running.server.app.find(PeriodBook.create_id("acme"))
    recorded = book.closed["2026-11-01"]
    assert recorded.lines == () and not recorded.lines_recorded
    assert (recorded.moved_lines, recorded.moved_lines_digest) == moved(
        reference(store_url, "2026-11-01")
    )
    # CloseDay answers with the first page, and where the next begins.
    assert [line_of(x) for x in first.statement.lines] == list(
        reference(store_url, "2026-11-01").lines[:100]
    )
    assert first.next_page_token == ""
    # A token this service did not give, or a page too large, is refused.
    bad = finance.finance.GetDayStatement
    assert_invalid(
        lambda: bad(
            finance_pb2.GetDayStatementRequest(day="2026-11-01", page_token="bm90IGEgdG9rZW4=")
        ),
        "page_token",
    )
    assert_invalid(
        lambda: bad(finance_pb2.GetDayStatementRequest(day="2026-11-01", page_size=1001)),
        "page_size",
    )


def assert_invalid(call: Any, field: str) -> None:
    got = refused(call)
    assert got.code.name == "INVALID_ARGUMENT" and field in got.fields, got


def test_an_account_statement_of_many_pages_reads_back_whole(
    shop: LedgerClient,
    admin: LedgerClient,
    finance: LedgerClient,
    clock: Clock,
) -> None:
    books = Books(shop)
    team(shop)
    for n in range(5):
        place(shop, f"O{n}")
        pay(shop, f"O{n}")
        books.saw(
            shop.storefront.CompleteOrder(
                storefront_pb2.CompleteOrderRequest(
                    idempotency_key=idempotency_key(), order_id=f"O{n}"
                )
            ).receipt
        )
        clock.advance(hours=5)
    clock.advance(days=8)
    settle(admin, books)
    books.saw(refund(shop, "O0", "r1", (1, 3333)).receipt)

    def read(size: int) -> tuple[list[tuple[int, str, str, int]], list[Any]]:
        token, found, totals = "", [], []
        while True:
            reply = finance.finance.GetAccountStatement(
                finance_pb2.GetAccountStatementRequest(
                    account="reseller:carol",
                    from_day="2026-11-01",
                    to_day="2026-11-30",
                    min_log_position=books.position,
                    page_size=size,
                    page_token=token,
                )
            )
            assert len(reply.movements) <= size
            found += [(m.position, m.kind, m.bucket, m.amount) for m in reply.movements]
            totals.append([(t.currency, t.bucket, t.opening, t.closing) for t in reply.totals])
            token = reply.next_page_token
            if not token:
                return found, totals

    whole, [totals] = read(1000)
    paged, every_page = read(3)
    assert len(whole) == 5 + 10 + 1  # five payments, five settlements (two each), a refund
    assert paged == whole and all(t == totals for t in every_page)
    assert totals == [("CNY", "available", 0, 5 * 1599 - 533), ("CNY", "frozen", 0, 0)]


def test_an_old_format_close_reads_back_page_by_page_from_its_event(
    running: Running,
    store_url: str,
    finance: LedgerClient,
    clock: Clock,
) -> None:
    app: LedgerApplication = running.server.app
    models = ReadModels(store_url)
    runner = ProjectionRunner(app, store_url)
    try:
        settle_worked_example(app, clock, runner, models)
        clock.advance(days=1)
        recorded = close_the_old_way(app, runner, models, store_url, "2026-11-09")
        assert len(recorded.lines) > 4
        assert all_lines(finance, "2026-11-09", 2) == list(recorded.lines)
        [reply] = pages(finance, "2026-11-09", 1000)
        assert reply.statement.closed and reply.statement.moved_lines_digest == ""
        assert summary_of(recorded) == (
            reply.statement.movements,
            reply.statement.first_position,
            reply.statement.last_position,
            reply.statement.digest,
        )
        assert all_lines(finance, "2026-11-10", 2) == list(reference(store_url, "2026-11-10").lines)
    finally:
        models.close()
        runner.stop()
