"""A day's close happens whole or not at all, once: its rules on the PeriodBook, and the two
writes of a close as the application runs them (the crash and two-server tests of the same
are in test_crash_recovery.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from ledger import failpoints
from ledger.application import commands as c
from ledger.application import context
from ledger.application.ledger_app import LedgerApplication, Outcome
from ledger.application.unit_of_work import UnitOfWork
from ledger.bootstrap import build_application
from ledger.domain.errors import AlreadyExists, LedgerError, RuleViolation
from ledger.domain.periods import DayStatement, PeriodBook
from tests.conftest import Clock
from tests.integration.test_event_log import SHOP, tea
from tests.unit.deciding import begin_closing, close

FINANCE = c.Caller("acme", "fin", "finance")
NOW = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)  # 10:00 on 2026-11-10 in Shanghai


def statement(day: str, digest: str = "0" * 64) -> DayStatement:
    return DayStatement(day, "Asia/Shanghai", (), 0, 0, 0, digest)


def noon(day: int) -> datetime:
    return datetime(2026, 11, day, 4, 0, tzinfo=UTC)


# --- the PeriodBook's rules ------------------------------------------------------------------


def test_a_day_shut_without_its_statement_is_the_next_to_close_and_takes_no_writes() -> None:
    book = PeriodBook("acme", "Asia/Shanghai")
    begin_closing(book, "2026-11-05", now=NOW)  # the first close; its server dies here
    assert book.unfinished == book.next_to_close == "2026-11-05"
    for other in ("2026-11-04", "2026-11-06"):  # closing either would leave 11-05 so for good
        with pytest.raises(RuleViolation) as refused:
            begin_closing(book, other, now=NOW)
        assert refused.value.reason == "PERIOD_OUT_OF_ORDER"
        assert "2026-11-05" in str(refused.value)
    with pytest.raises(RuleViolation, match="closed"):
        book.check_open(noon(5))
    version = book.version
    begin_closing(book, "2026-11-05", now=NOW)  # another close of it joins this one
    assert book.version == version
    close(book, statement("2026-11-05"), now=NOW)
    assert book.unfinished == "" and book.next_to_close == "2026-11-06"


def test_a_day_closed_meanwhile_keeps_its_first_statement_and_is_not_shut_again() -> None:
    book = PeriodBook("acme", "Asia/Shanghai")
    begin_closing(book, "2026-11-05", now=NOW)
    close(book, statement("2026-11-05", "a" * 64), now=NOW)
    version = book.version
    close(book, statement("2026-11-05", "b" * 64), now=NOW)  # the server that lost the race
    assert book.version == version and book.closed["2026-11-05"].digest == "a" * 64
    with pytest.raises(AlreadyExists):  # a new close of a closed day shuts nothing
        begin_closing(book, "2026-11-05", now=NOW)
    assert book.version == version


# --- the two writes, as the application runs them --------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


def write(app: LedgerApplication, command: c.Command) -> Outcome | BaseException:
    return app.run_batch([(FINANCE, command)])[0]


def backfill(app: LedgerApplication, order_id: str, day: int) -> Outcome | BaseException:
    return app.run_batch([(SHOP, c.ImportOrder(
        f"import-{order_id}", order_id, "c1", "", "CNY", tea(), payment_id=f"w-{order_id}",
        placed_at=noon(day), paid_at=noon(day)))])[0]


def book_of(app: LedgerApplication) -> PeriodBook | None:
    return app.find(PeriodBook.create_id("acme"))


def test_a_day_left_shut_by_a_dead_close_is_closed_by_a_close_with_any_key_once(
        app: LedgerApplication) -> None:
    """The first request's server died after shutting the day. Another request closes it;
    the first, repeated with its key, then answers with the statement recorded, and the day
    was closed once."""
    first = c.CloseDay("close-a", "2026-11-05")
    assert isinstance(write(app, c.BeginClosingDay.first_step_of(first)), Outcome)
    second = c.CloseDay("close-b", "2026-11-05")
    assert isinstance(write(app, c.BeginClosingDay.first_step_of(second)), Outcome)
    assert isinstance(write(app, dataclasses.replace(second, statement=statement(
        "2026-11-05", "a" * 64))), Outcome)
    closed = book_of(app)
    assert closed is not None and closed.version == 3  # opened, shut, closed

    again = write(app, c.BeginClosingDay.first_step_of(first))
    assert isinstance(again, Outcome) and again.replayed
    answer = write(app, dataclasses.replace(first, statement=statement("2026-11-05", "b" * 64)))
    assert isinstance(answer, Outcome) and not answer.replayed
    book = app.answer(answer.ref)
    assert book.closed["2026-11-05"].digest == "a" * 64
    assert book.version == 3


def test_a_close_key_already_taken_is_refused_before_the_day_is_shut(
        app: LedgerApplication) -> None:
    """Used by another request, the key would refuse the close's second write: the day
    would stay shut without its statement. The first write checks it, and shuts nothing."""
    assert isinstance(write(app, c.EnrollReseller("taken", "dana", "", "", True)), Outcome)
    close = c.CloseDay("taken", "2026-11-05")
    refused = write(app, c.BeginClosingDay.first_step_of(close))
    assert isinstance(refused, LedgerError) and refused.reason == "IDEMPOTENCY_KEY_REUSED"
    assert book_of(app) is None
    assert isinstance(backfill(app, "H1", 5), Outcome)  # the day still takes writes


def test_a_close_recorded_before_closes_had_a_first_step_replays_when_repeated(
        app: LedgerApplication) -> None:
    """Such a close's key holds the whole close: repeated now, its first step finds the key
    and shuts nothing (the day is closed), and its second replays."""
    close = c.CloseDay("old-close", "2026-11-05", statement("2026-11-05"))
    first = write(app, close)
    assert isinstance(first, Outcome)
    begun = write(app, c.BeginClosingDay.first_step_of(close))
    assert isinstance(begun, Outcome) and not begun.replayed
    again = write(app, close)
    assert isinstance(again, Outcome) and again.replayed and again.ref == first.ref
    fresh = write(app, c.BeginClosingDay.first_step_of(c.CloseDay("new", "2026-11-05")))
    assert isinstance(fresh, AlreadyExists)


def test_failpoints_are_armed_only_by_their_setting() -> None:
    assert not failpoints.armed()  # the test process sets none: every place costs a flag test
    assert failpoints.parse("a.b=crash; c=sleep(20)") == {"a.b": None, "c": 0.02}
    for bad in ("a.b", "a=explode", "=crash", "a=sleep(x)"):
        with pytest.raises(failpoints.FailpointError):
            failpoints.parse(bad)
    failpoints.arm("close_day.after_begin=sleep(1)")
    try:
        assert failpoints.armed()
        failpoints.reached("close_day.after_begin")  # sleeps a millisecond, here
        failpoints.reached("elsewhere")
    finally:
        failpoints.arm("")
    assert not failpoints.armed()


class Interleaved(LedgerApplication):
    """Runs ``between`` once, after the next batch was decided and before it is saved: there
    another server's write can commit, as it may on a live system."""

    name = "Ledger"  # the same event table as the other server's
    between: Callable[[], None] | None = None

    def save_staged(self, *args: Any, **kwargs: Any) -> Any:
        hook, self.between = self.between, None
        if hook is not None:
            hook()
        return super().save_staged(*args, **kwargs)


@pytest.mark.postgres
def test_a_backfill_decided_before_another_server_shut_the_day_does_not_land_in_it(
        postgres_url: str, clock: Clock) -> None:
    """Server A decides a backfill dated into 11-05 while the day is open; server B shuts the
    day before A saves. A's version check of what it read ran before B's write, so A would
    land in the day after B drew its statement, and the statement would miss it. The day's
    book is checked again under the log's insert lock: A is decided again and refused."""
    a = build_application(postgres_url, clock, app_class=Interleaved)
    b = build_application(postgres_url, clock)
    try:
        assert isinstance(backfill(a, "H1", 4), Outcome)  # the book exists, and A has read it
        assert isinstance(a, Interleaved)
        a.between = lambda: b.run_batch([(FINANCE, c.BeginClosingDay.first_step_of(
            c.CloseDay("close", "2026-11-05")))])
        late = backfill(a, "H2", 5)
        assert isinstance(late, RuleViolation) and late.reason == "PERIOD_CLOSED"
        assert a.between is None  # B did shut the day in between
        assert isinstance(backfill(a, "H3", 6), Outcome)  # a later day still takes it
    finally:
        a.close()
        b.close()


def test_a_write_relies_on_the_book_only_when_dated_into_a_day_that_may_be_over(
        app: LedgerApplication) -> None:
    """The check under the insert lock costs a query, so only a write that another server
    could be closing the day of asks for it: a backfill, or a write in the last minutes of
    the day (another server's clock may be ahead)."""
    assert isinstance(backfill(app, "H1", 4), Outcome)  # the book exists
    before_midnight = datetime(2026, 11, 10, 15, 57, tzinfo=UTC)  # 23:57 in Shanghai
    for now, clock, relied_on in ((NOW, NOW, False), (before_midnight, before_midnight, True),
                                  (noon(5), NOW, True)):
        uow = UnitOfWork(app.repository)
        context.check_open(context.Context(uow, SHOP, now, "Asia/Shanghai", clock))
        assert bool(uow.kept_unchanged()) == relied_on, now
