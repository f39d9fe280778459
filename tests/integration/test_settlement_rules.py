"""Settlement, clawback and payouts on the application (DOMAIN.md "Order life" and
"Payouts"): the money leaves exactly once. Each test writes as a storefront, an admin and
finance would, runs settlement as the application's use case, and reads the balances from the
read models as GetBalance does. The same over gRPC (what the API answers, its pages and who
may call) is in tests/e2e/test_settlement_payouts.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from ledger.application import commands as c
from ledger.application.closing import Closing
from ledger.application.ledger_app import Outcome
from ledger.domain.errors import AlreadyExists, InvalidInput, NotFound, RuleViolation
from ledger.domain.payout import APPROVED, FAILED, PAID, REJECTED, REQUESTED, Payout
from ledger.domain.periods import DayStatement, PeriodBook, StatementLine
from tests.conftest import Clock
from tests.helpers import identified
from tests.integration.stack import FINANCE, SHOP, TEA, TEAM, Stack, run
from tests.integration.test_event_log import order_state as state


def key() -> str:
    return uuid.uuid4().hex


def withdraw(stack: Stack, reseller: str, amount: int) -> Payout:
    """A reseller's withdrawal, asked for in the shop."""
    return stack.answer(SHOP, c.RequestPayout(key(), f"reseller:{reseller}", "CNY", amount))


def approve(stack: Stack, payout_id: str) -> Payout:
    return stack.answer(FINANCE, c.ApprovePayout(key(), payout_id))


def pay_out(stack: Stack, payout_id: str, reference: str) -> Payout:
    """Finance approves the payout, then marks it paid with the rail's reference."""
    approve(stack, payout_id)
    return stack.answer(FINANCE, c.MarkPayoutPaid(key(), payout_id, reference))


def payout(stack: Stack, payout_id: str) -> Payout:
    found = stack.app.find(Payout.create_id("acme", payout_id))
    assert found is not None
    return found


def test_worked_example_through_settlement_payout_clawback_and_recovery(
        stack: Stack, clock: Clock) -> None:
    stack.do(SHOP, *TEAM)
    stack.do(FINANCE, identified(key(), "carol"))
    stack.sell("O1")
    assert stack.of("reseller:carol") == {"frozen": 1599}
    # Inside the freeze window nothing moves.
    clock.advance(days=6, hours=23)
    assert stack.settle(key()) == []
    assert stack.of("reseller:carol") == {"frozen": 1599}
    clock.advance(hours=1)
    assert stack.settle(key()) == ["O1"]
    assert stack.of("reseller:carol") == {"available": 1599}
    assert stack.of("reseller:bob") == {"available": 399}
    assert stack.of("supplier:S1") == {"available": 6000}
    assert stack.of("platform") == {"available": 2001}
    assert stack.settle(key()) == []  # settling again moves nothing twice
    assert stack.of("reseller:carol") == {"available": 1599}

    # Carol withdraws 15.00: it leaves available at once.
    asked = withdraw(stack, "carol", 1500)
    assert asked.status == REQUESTED
    assert asked.payout_id.startswith("PO") and len(asked.payout_id) == 32
    assert asked.payout_id.isalnum()
    assert stack.of("reseller:carol") == {"available": 99, "in_flight": 1500}
    stack.caught_up()
    payable = stack.models.payable("acme", 0, 100)
    assert [(p.payout_id, p.amount) for p in payable] == [(asked.payout_id, 1500)]
    assert approve(stack, asked.payout_id).status == APPROVED
    paid = stack.answer(FINANCE, c.MarkPayoutPaid(key(), asked.payout_id, "wx-777"))
    assert (paid.status, paid.reference) == (PAID, "wx-777")
    assert stack.of("reseller:carol") == {"available": 99, "paid_out": 1500}

    # A late refund of one unit claws back 5.33 from carol: she now owes 4.34.
    stack.do(SHOP, c.RefundOrder(key(), "O1", "r1", (c.RefundLineRequest(1, 3333),), ""))
    assert stack.of("reseller:carol") == {"debt": 434, "paid_out": 1500}
    assert stack.of("reseller:bob") == {"available": 266}
    assert stack.of("supplier:S1") == {"available": 4000}
    assert stack.of("platform") == {"available": 1334}
    with pytest.raises(RuleViolation) as in_debt:
        withdraw(stack, "carol", 1000)
    assert in_debt.value.reason == "ACCOUNT_IN_DEBT"

    # The next order's commission pays the debt first.
    stack.sell("O2")
    assert stack.of("reseller:carol") == {"frozen": 1599, "debt": 434, "paid_out": 1500}
    clock.advance(days=8)
    assert stack.settle(key()) == ["O2"]
    assert stack.of("reseller:carol") == {"available": 1165, "paid_out": 1500}
    assert stack.of("reseller:bob") == {"available": 665}
    everyone = stack.models.page_of_balances("acme", kind="", currency="", order_by="account",
                                             offset=0, limit=1000, after=None)
    assert sum(b.frozen + max(b.available, 0) - b.debt + b.in_flight + b.paid_out + b.clearing
               for b in everyone) == 0


def test_a_payout_is_not_approved_while_a_clawback_left_its_account_in_debt(
        stack: Stack, clock: Clock) -> None:
    """Carol asks for 15.00; before finance approves, a refund claws back all of her 15.99
    (she owes 15.00). Approving would pay out money she owes back, so it is refused; rejected,
    the 15.00 returns to available and repays the debt."""
    stack.do(SHOP, *TEAM)
    stack.do(FINANCE, identified(key(), "carol"))
    stack.sell("O1")
    clock.advance(days=8)
    assert stack.settle(key()) == ["O1"]
    asked = withdraw(stack, "carol", 1500)
    stack.do(SHOP, c.RefundOrder(key(), "O1", "r1", (c.RefundLineRequest(1, 9999),), ""))
    assert stack.of("reseller:carol") == {"debt": 1500, "in_flight": 1500}
    with pytest.raises(RuleViolation) as no:
        approve(stack, asked.payout_id)
    assert no.value.reason == "ACCOUNT_IN_DEBT"
    assert payout(stack, asked.payout_id).status == REQUESTED
    stack.do(FINANCE, c.RejectPayout(key(), asked.payout_id, "clawed back"))
    assert stack.of("reseller:carol") == {}


def test_open_after_sales_case_holds_settlement_past_the_window(
        stack: Stack, clock: Clock) -> None:
    stack.do(SHOP, *TEAM)
    stack.sell("O1")
    stack.do(SHOP, c.OpenAfterSale(key(), "O1", "k1", 1, "broken lid"))
    clock.advance(days=30)
    assert stack.settle(key()) == []
    stack.do(SHOP, c.CloseAfterSale(key(), "O1", "k1", "replaced"))
    assert stack.settle(key()) == ["O1"]
    assert stack.of("reseller:carol") == {"available": 1599}


def test_payout_steps_are_idempotent_and_refused_in_the_wrong_state(
        stack: Stack, clock: Clock) -> None:
    stack.do(SHOP, *TEAM)
    stack.do(FINANCE, identified(key(), "carol"))
    stack.sell("O1")
    clock.advance(days=8)
    stack.settle(key())
    with pytest.raises(RuleViolation) as below:
        withdraw(stack, "carol", 999)
    assert below.value.reason == "BELOW_MINIMUM_PAYOUT"
    with pytest.raises(RuleViolation) as above:
        withdraw(stack, "carol", 1600)
    assert above.value.reason == "INSUFFICIENT_AVAILABLE"
    with pytest.raises(NotFound):
        withdraw(stack, "nobody", 1000)

    # The supplier's payout, through finance: requested, rejected (money back).
    request = c.RequestPayout("sup-1", "supplier:S1", "CNY", 5000)
    first = stack.do(FINANCE, request)
    again = stack.do(FINANCE, request)
    assert again.replayed and again.ref == first.ref
    assert state(stack.app.answer(again.ref)) == state(stack.app.answer(first.ref))
    pid = stack.app.answer(first.ref).payout_id
    with pytest.raises(RuleViolation) as wrong:
        stack.do(FINANCE, c.MarkPayoutPaid(key(), pid, "x"))
    assert wrong.value.reason == "PAYOUT_REQUESTED"
    stack.do(FINANCE, c.RejectPayout(key(), pid, "bank details missing"))
    twice = stack.answer(FINANCE, c.RejectPayout(key(), pid, "double click"))
    assert twice.status == REJECTED
    assert stack.of("supplier:S1") == {"available": 6000}

    # Carol's: approved twice (a double click), then the rail fails it: money back.
    asked = withdraw(stack, "carol", 1200)
    for _ in range(2):
        approve(stack, asked.payout_id)
    failed = stack.answer(FINANCE, c.MarkPayoutFailed(key(), asked.payout_id, "card closed"))
    assert failed.status == FAILED
    assert stack.of("reseller:carol") == {"available": 1599}
    with pytest.raises(RuleViolation) as late:
        stack.do(FINANCE, c.MarkPayoutPaid(key(), asked.payout_id, "wx"))
    assert late.value.reason == "PAYOUT_FAILED"
    assert payout(stack, asked.payout_id).reason == "card closed"


# --- days: closed for good, corrections in the open day ---------------------------------------

ZONE = "Asia/Shanghai"


def lines(stack: Stack, day: str) -> list[StatementLine]:
    """The day's statement lines, as the read models hold them once they hold every write."""
    stack.caught_up()
    return stack.models.statement_lines("acme", day, 1000)


def close(stack: Stack, day: str, idempotency_key: str = "") -> tuple[Outcome, DayStatement]:
    return run(Closing(stack.app, stack.models, stack.audit).close_day(
        stack.steps, FINANCE, c.CloseDay(idempotency_key or key(), day)))


def test_closed_day_statement_is_final_and_late_refunds_land_in_the_open_day(
        stack: Stack, clock: Clock) -> None:
    # The clock starts at 2026-11-01 10:00 in Shanghai.
    stack.do(SHOP, *TEAM)
    stack.sell("O1")
    with pytest.raises(RuleViolation) as too_early:
        close(stack, "2026-11-01")
    assert too_early.value.reason == "PERIOD_NOT_OVER"
    clock.advance(days=1)
    _, statement = close(stack, "2026-11-01", "close-11-01")
    assert statement.timezone == ZONE
    book = stack.app.find(PeriodBook.create_id("acme"))
    assert book is not None and book.closed["2026-11-01"] == statement
    closed_lines = lines(stack, "2026-11-01")
    by_account = {(x.account, x.currency): x for x in closed_lines}
    carol = by_account[("reseller:carol", "CNY")]
    assert (carol.opening, carol.closing) == (0, 1599)
    assert list(carol.movements) == [("payment", 1599)]
    assert by_account[("clearing:customer-funds", "CNY")].closing == -9999
    assert sum(x.closing for x in closed_lines) == 0
    again, same = close(stack, "2026-11-01", "close-11-01")  # a retry replays the first answer
    assert again.replayed and same == statement
    with pytest.raises(AlreadyExists):
        close(stack, "2026-11-01")

    # A refund of the closed day's order lands in the open day, as a correction.
    stack.do(SHOP, c.RefundOrder(key(), "O1", "r1", (c.RefundLineRequest(1, 3333),), ""))
    book = stack.app.find(PeriodBook.create_id("acme"))
    assert book is not None and book.closed["2026-11-01"] == statement
    assert lines(stack, "2026-11-01") == closed_lines
    assert "2026-11-02" not in book.closed
    carol_today = {x.account: x for x in lines(stack, "2026-11-02")}["reseller:carol"]
    assert (carol_today.opening, carol_today.closing) == (1599, 1066)
    assert list(carol_today.movements) == [("refund", -533)]

    history = stack.models.account_movements("acme", "reseller:carol", "2026-11-01",
                                             "2026-11-02", ZONE, 100)
    assert [(m.kind, m.amount, m.source) for m in history] == [
        ("payment", 1599, "order:shop-a/O1"), ("refund", -533, "order:shop-a/O1/refund:r1")]
    totals = stack.models.account_totals("acme", "reseller:carol", "2026-11-01", "2026-11-02",
                                         ZONE)
    assert [(t.opening, t.closing) for t in totals] == [(0, 1066)]

    # Days close in order: skipping 11-02 would shut it with no statement.
    clock.advance(days=2)  # 11-03 is over too
    with pytest.raises(RuleViolation) as skipped:
        close(stack, "2026-11-03")
    assert skipped.value.reason == "PERIOD_OUT_OF_ORDER"
    assert "2026-11-02" in skipped.value.message
    for day in ("2026-11-02", "2026-11-03"):
        _, closed_day = close(stack, day)
        assert closed_day.day == day
    book = stack.app.find(PeriodBook.create_id("acme"))
    assert book is not None and {"2026-11-02", "2026-11-03"} <= set(book.closed)
    opened = {x.account: x.opening for x in lines(stack, "2026-11-03")}
    assert opened["reseller:carol"] == 1066  # where 11-02 closed


def test_day_statements_show_settlements_and_payouts_bucket_by_bucket(
        stack: Stack, clock: Clock) -> None:
    """A settlement and a payout move money between an account's own buckets. One line per
    account netted them to nothing, and kept paid-out money in its closing balance; a line
    per bucket shows each, and what the account is still owed."""
    stack.do(SHOP, *TEAM)
    stack.do(FINANCE, identified(key(), "carol"))
    stack.sell("O1")  # 2026-11-01 in Shanghai
    clock.advance(days=8)  # 2026-11-09
    assert stack.settle(key()) == ["O1"]
    asked = withdraw(stack, "carol", 1500)
    pay_out(stack, asked.payout_id, "wx-1")
    day = lines(stack, "2026-11-09")
    carol = {x.bucket: (x.opening, list(x.movements), x.closing)
             for x in day if x.account == "reseller:carol"}
    assert carol == {
        "frozen": (1599, [("settlement", -1599)], 0),
        "available": (0, [("payout_requested", -1500), ("settlement", 1599)], 99),
        "in_flight": (0, [("payout_paid", -1500), ("payout_requested", 1500)], 0),
        "paid_out": (0, [("payout_paid", 1500)], 1500),
    }
    owed = sum(x.closing for x in day if x.account == "reseller:carol"
               and x.bucket in ("frozen", "available", "in_flight"))
    assert owed == 99 and sum(x.closing for x in day) == 0
    totals = stack.models.account_totals("acme", "reseller:carol", "2026-11-09", "2026-11-09",
                                         ZONE)
    assert {t.bucket: t.closing for t in totals} == {
        "frozen": 0, "available": 99, "in_flight": 0, "paid_out": 1500}


def test_backfilled_orders_keep_their_dates_and_never_land_in_a_closed_day(
        stack: Stack, clock: Clock) -> None:
    """Orders imported with each step's own time: the money lands on the day it was paid,
    the freeze window runs from when it was completed, and closed days and the future stay
    shut."""

    def at(day: int, hour: int, month: int = 11) -> datetime:
        return datetime(2026, month, day, hour, tzinfo=UTC)

    stack.do(SHOP, *TEAM)
    clock.advance(days=30)  # now 2026-12-01 02:00 UTC
    close(stack, "2026-11-02", "close-11-02")

    def imported(order_id: str, **times: datetime) -> c.ImportOrder:
        return c.ImportOrder(f"import:{order_id}", order_id, f"c-{order_id}", "carol", "CNY",
                             TEA, f"w-{order_id}", True, **times)

    # One message of an import: its orders go to the writer together.
    results = stack.app.run_batch([(SHOP, command) for command in (
        imported("H1", placed_at=at(10, 1), paid_at=at(10, 2), completed_at=at(12, 3)),
        imported("H2", paid_at=at(2, 4)),  # 2026-11-02 12:00 in Shanghai: closed
        imported("H3", placed_at=at(1, 3, month=12)),  # an hour from now
        imported("H4", paid_at=at(12, 1), completed_at=at(11, 1)),
        # A completion dated without its payment would be paid now, after it was completed.
        imported("H5", completed_at=at(11, 1)),
        imported("H6", paid_at=at(20, 1)),  # placed when paid, not now (after the payment)
    )])
    refused = {order_id: r for order_id, r in zip(("H1", "H2", "H3", "H4", "H5", "H6"), results,
                                                  strict=True) if isinstance(r, BaseException)}
    assert {k: type(r) for k, r in refused.items()} == {
        "H2": RuleViolation, "H3": InvalidInput, "H4": InvalidInput, "H5": InvalidInput}
    assert "PERIOD_CLOSED" in str(refused["H2"]) or "closed" in str(refused["H2"])
    assert "completed_at" in str(refused["H4"])
    assert "completed_at" in str(refused["H5"])
    h6 = stack.app.order(SHOP, "H6")
    assert h6.placed_at == h6.paid_at == h6.completed_at == at(20, 1)
    h1 = stack.app.order(SHOP, "H1")
    assert (h1.placed_at, h1.paid_at, h1.completed_at) == (at(10, 1), at(10, 2), at(12, 3))
    carol = {x.account: x for x in lines(stack, "2026-11-10")}["reseller:carol"]
    assert list(carol.movements) == [("payment", 1599)]
    # Completed on 11-12 and 11-20: their seven frozen days are over, so they settle at once.
    assert stack.settle(key()) == ["H1", "H6"]
    assert stack.of("reseller:carol") == {"available": 2 * 1599}
