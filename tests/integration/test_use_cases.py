"""The application's use cases (closing a day, settlement, the quarter's tax report,
reconciliation) run below gRPC: on a real store, with the group commit and the read models
following the log in their own thread, as a server runs them, and no API in between. The same
flows through gRPC, with their error mapping, are in tests/e2e."""

from __future__ import annotations

import dataclasses

import pytest

from bench.reconcile import trade_bill
from ledger.application import commands as c
from ledger.application.closing import Closing
from ledger.application.reconciliation import Reconciliation
from ledger.application.settlement import Settlement
from ledger.application.tax_reports import TaxReports
from ledger.domain.bills import WECHAT
from ledger.domain.errors import InvalidInput, NotFound, RuleViolation
from ledger.domain.order import OrderKey
from ledger.domain.periods import PeriodBook
from ledger.domain.reconciliation import ACKNOWLEDGED, OPEN, RESOLVED, TRADE
from tests.conftest import Clock
from tests.helpers import identified
from tests.integration.stack import ADMIN, FINANCE, SHOP, TEA, TEAM, Stack, run

# --- closing a day ----------------------------------------------------------------------------


def test_a_close_records_the_statement_drawn_after_the_day_was_shut_and_a_repeat_replays_it(
        stack: Stack, clock: Clock) -> None:
    stack.do(SHOP, *TEAM)
    stack.sell("O1")  # 2026-11-01 in Shanghai
    clock.advance(days=1)
    closing = Closing(stack.app, stack.models, stack.audit)
    close = c.CloseDay("close-1", "2026-11-01")
    outcome, statement = run(closing.close_day(stack.steps, FINANCE, close))

    assert not outcome.replayed
    assert statement.day == "2026-11-01" and statement.digest
    drawn = stack.models.day_statement("acme", "2026-11-01", stack.app.timezone)
    assert (statement.digest, statement.events) == (drawn.digest, drawn.events) != ("", 0)
    # The statement names the head signed over the log it was drawn from.
    [head] = [h for h in stack.audit.heads("acme") if h.reason == "close 2026-11-01"]
    assert (statement.tree_size, statement.tree_root) == (head.tree_size, head.root.hex())
    # ... up to the log's head once the day was shut: all but the close's own event.
    assert head.tree_size == stack.audit.log.tree_size("acme", outcome.log_position - 1)
    assert head.tree_size + 1 == stack.audit.log.tree_size("acme", outcome.log_position)
    book = stack.app.find(PeriodBook.create_id("acme"))
    assert book is not None and book.closed["2026-11-01"] == statement
    assert book.unfinished == "" and book.next_to_close == "2026-11-02"

    again, same = run(closing.close_day(stack.steps, FINANCE, close))
    assert again.replayed and same == statement
    after = stack.app.find(PeriodBook.create_id("acme"))
    assert after is not None and after.version == book.version


def test_a_close_with_a_break_open_is_refused_with_nothing_shut_unless_breaks_are_off(
        stack: Stack, clock: Clock) -> None:
    stack.do(SHOP, *TEAM)
    clock.advance(days=1)
    day = "2026-11-01"
    run(Reconciliation(stack.app, stack.models).import_bill(
        stack.steps, FINANCE, "bill-1", day, TRADE, WECHAT, trade_bill(day, [("w-x", "5.00")])))
    closing = Closing(stack.app, stack.models, stack.audit)
    with pytest.raises(RuleViolation) as refused:
        run(closing.close_day(stack.steps, FINANCE, c.CloseDay("close-1", day)))
    assert refused.value.reason == "RECONCILIATION_OPEN" and "1 open" in str(refused.value)
    assert stack.app.find(PeriodBook.create_id("acme")) is None  # nothing was shut

    with pytest.raises(InvalidInput):  # checked before anything is read or written
        run(closing.close_day(stack.steps, FINANCE, c.CloseDay("close-2", "2026-13-01")))

    _, statement = run(closing.close_day(stack.steps, FINANCE, c.CloseDay("close-3", day),
                                         reconciliation_required=False))
    book = stack.app.find(PeriodBook.create_id("acme"))
    assert book is not None and book.closed[day] == statement


def test_the_finisher_closes_a_day_left_shut_by_a_dead_close_once(
        stack: Stack, clock: Clock) -> None:
    stack.do(SHOP, *TEAM)
    stack.sell("O1")
    clock.advance(days=1)
    closing = Closing(stack.app, stack.models, stack.audit)
    assert run(closing.finish(stack.steps, ["acme", "globex"])) == []  # nothing begun
    # The close's server died after its first write: the day is shut, without a statement.
    stack.do(FINANCE, c.BeginClosingDay.first_step_of(c.CloseDay("close-1", "2026-11-01")))
    shut = stack.app.find(PeriodBook.create_id("acme"))
    assert shut is not None and shut.unfinished == "2026-11-01"

    assert run(closing.finish(stack.steps, ["acme", "globex"])) == [("acme", "2026-11-01")]
    book = stack.app.find(PeriodBook.create_id("acme"))
    assert book is not None and book.unfinished == "" and "2026-11-01" in book.closed
    drawn = stack.models.day_statement("acme", "2026-11-01", stack.app.timezone)
    assert book.closed["2026-11-01"].digest == drawn.digest
    assert run(closing.finish(stack.steps, ["acme"])) == []  # finished once
    # The request repeated with its key joins the close the finisher recorded.
    _, statement = run(closing.close_day(stack.steps, FINANCE,
                                         c.CloseDay("close-1", "2026-11-01")))
    assert statement == book.closed["2026-11-01"]


def test_a_days_statement_is_its_closes_once_closed_and_drawn_as_the_log_stands_before(
        stack: Stack, clock: Clock) -> None:
    stack.do(SHOP, *TEAM)
    stack.sell("O1")
    stack.sell("O2")
    clock.advance(days=1)
    closing = Closing(stack.app, stack.models, stack.audit)
    head = stack.app.log_position()
    opened, closed = run(closing.day_statement(stack.steps, "acme", "2026-11-01", limit=3,
                                               min_log_position=head))
    assert not closed and len(opened.lines) == 3
    drawn = stack.models.day_statement("acme", "2026-11-01", stack.app.timezone)
    assert (opened.events, opened.digest) == (drawn.events, drawn.digest) != (0, "")
    every = stack.models.statement_lines("acme", "2026-11-01", 1000)
    assert list(opened.lines) == every[:3]
    last = opened.lines[-1]
    later, _ = run(closing.day_statement(
        stack.steps, "acme", "2026-11-01", limit=1000, first_page=False,
        after=(last.account, last.currency, last.bucket)))
    assert list(later.lines) == every[3:] and (later.events, later.digest) == (0, "")

    _, recorded = run(closing.close_day(stack.steps, FINANCE, c.CloseDay("close", "2026-11-01")))
    stack.sell("O3")  # a day later: the closed day's statement stays as its close recorded it
    page, closed = run(closing.day_statement(stack.steps, "acme", "2026-11-01", limit=1000))
    assert closed and page == dataclasses.replace(recorded, lines=tuple(every))
    assert not run(closing.day_statement(stack.steps, "acme", "2026-11-02", limit=1))[1]


# --- settlement -------------------------------------------------------------------------------


def test_a_settlement_run_settles_what_the_read_models_list_as_due_once(
        stack: Stack, clock: Clock) -> None:
    stack.do(SHOP, *TEAM)
    stack.sell("O1")
    stack.do(SHOP, c.PlaceOrder("p-O2", "O2", "c2", "carol", "CNY", TEA),
             c.PayOrder("y-O2", "O2", "w-O2", 9999))  # paid, never received: not due
    settlement = Settlement(stack.app, stack.models)
    outcome, none_yet = run(settlement.run(stack.steps, ADMIN, "run-1"))
    assert none_yet.orders == () and outcome.ref.settled_count == 0  # inside the window

    clock.advance(days=8)
    outcome, ran = run(settlement.run(stack.steps, ADMIN, "run-2"))
    assert ran.orders == (OrderKey("shop-a", "O1"),) and outcome.ref.settled_count == 1
    again, same = run(settlement.run(stack.steps, ADMIN, "run-2"))  # its key: a repeat
    assert again.replayed and same.orders == ran.orders
    _, later = run(settlement.run(stack.steps, ADMIN, "run-3"))
    assert later.orders == ()  # an order is settled once


def test_scheduled_settlement_settles_each_platforms_due_orders_in_a_run_of_its_own(
        stack: Stack, clock: Clock) -> None:
    stack.do(SHOP, *TEAM)
    stack.sell("O1")
    stack.sell("O2")
    settlement = Settlement(stack.app, stack.models)
    run(stack.steps.caught_up(stack.app.log_position()))
    assert run(settlement.settle_due(stack.steps)) == 0  # inside the window: no run at all
    clock.advance(days=8)
    assert run(settlement.settle_due(stack.steps)) == 2
    assert stack.app.order(SHOP, "O1").settled_at is not None
    assert stack.app.order(SHOP, "O2").settled_at is not None
    runs = [n for n in stack.app.recorder.select_notifications(1, 1000)
            if n.topic.endswith("SettlementRun.Ran")]
    assert len(runs) == 1  # one platform had orders due
    run(stack.steps.caught_up(stack.app.log_position()))
    assert run(settlement.settle_due(stack.steps)) == 0  # nothing settles twice


# --- the quarter's tax report -----------------------------------------------------------------


def test_a_closed_quarters_report_is_the_one_recorded_and_an_open_ones_is_drawn_anew(
        stack: Stack, clock: Clock) -> None:
    stack.do(SHOP, *TEAM)
    stack.do(FINANCE, identified("id-carol", "carol"))
    stack.sell("O1")
    reports = TaxReports(stack.app, stack.models)
    drawn = run(reports.quarter_report(stack.steps, FINANCE, "2026Q4",
                                       stack.app.log_position()))
    assert drawn.closed_at is None
    earned = {(x.account, x.currency): x.earned for x in drawn.lines}
    assert earned.get(("reseller:carol", "CNY")) == 1599

    with pytest.raises(InvalidInput):
        run(reports.quarter_report(stack.steps, FINANCE, "2026Q5"))
    clock.advance(days=70)  # 2027-01-10
    head = stack.app.log_position()
    outcome, closed = run(reports.close_quarter(stack.steps, FINANCE,
                                                c.CloseQuarter("q-1", "2026Q4")))
    assert closed.closed_at is not None and closed.lines == drawn.lines
    assert head == closed.last_position < outcome.log_position  # drawn at the log's head
    stack.sell("O2")  # recorded after the close: lands in the next quarter
    assert run(reports.quarter_report(stack.steps, FINANCE, "2026Q4")) == closed
    _, same = run(reports.close_quarter(stack.steps, FINANCE, c.CloseQuarter("q-1", "2026Q4")))
    assert same == closed


# --- reconciliation ---------------------------------------------------------------------------


def test_a_bill_is_recorded_once_and_only_an_open_break_is_acknowledged(
        stack: Stack, clock: Clock) -> None:
    stack.do(SHOP, *TEAM)
    day = "2026-11-01"
    reconciliation = Reconciliation(stack.app, stack.models)
    bill = trade_bill(day, [("w-O1", "99.99"), ("w-x", "5.00")])
    _, recorded, state = run(reconciliation.import_bill(
        stack.steps, FINANCE, "bill-1", day, TRADE, WECHAT, bill))
    assert (recorded.day, recorded.line_count, state.open) == (day, 2, 2)
    again, same, _ = run(reconciliation.import_bill(
        stack.steps, FINANCE, "bill-2", day, TRADE, WECHAT, bill))
    assert again.ref.already_imported and same.digest == recorded.digest

    stack.sell("O1", payment_id="w-O1")  # the bill's payment, now in the ledger
    run(stack.steps.caught_up(stack.app.log_position()))
    paid = stack.models.find_break("acme", day, "payment:w-O1:not_in_ledger")
    assert paid is not None and paid.status == RESOLVED
    with pytest.raises(RuleViolation) as resolved:
        run(reconciliation.acknowledge_break(stack.steps, FINANCE, c.AcknowledgeBreak(
            "ack-1", day, "payment:w-O1:not_in_ledger", "paid late")))
    assert resolved.value.reason == "BREAK_RESOLVED"
    with pytest.raises(NotFound):
        run(reconciliation.acknowledge_break(stack.steps, FINANCE, c.AcknowledgeBreak(
            "ack-2", day, "payment:nope:not_in_ledger", "x")))
    with pytest.raises(InvalidInput):  # a reason is required
        run(reconciliation.acknowledge_break(stack.steps, FINANCE, c.AcknowledgeBreak(
            "ack-3", day, "payment:w-x:not_in_ledger", " ")))

    stranger = stack.models.find_break("acme", day, "payment:w-x:not_in_ledger")
    assert stranger is not None and stranger.status == OPEN
    _, acked = run(reconciliation.acknowledge_break(stack.steps, FINANCE, c.AcknowledgeBreak(
        "ack-4", day, "payment:w-x:not_in_ledger", "a test payment")))
    assert (acked.status, acked.reason) == (ACKNOWLEDGED, "a test payment")
    repeat, same_break = run(reconciliation.acknowledge_break(
        stack.steps, FINANCE, c.AcknowledgeBreak("ack-4", day, "payment:w-x:not_in_ledger",
                                                 "a test payment")))
    assert repeat.replayed and same_break == acked
