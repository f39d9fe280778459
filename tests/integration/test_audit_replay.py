"""`replay` recomputes DOMAIN.md's figures from an export's postings alone, and finds a
closed day's statement equal to its replay, or names every line that differs."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import orjson
import pytest
from ledger.projections.clock import micros
from ledger.projections.reader import ReadModels
from ledger.projections.runner import ProjectionRunner

from ledger.application import commands as c
from ledger.application.ledger_app import LedgerApplication, Outcome
from ledger.audit.entries import Entry
from ledger.audit.export_file import read_export
from ledger.audit.replay import Reducer, replay
from ledger.audit.signing import Signer
from ledger.domain.periods import DayStatement
from tests.audit_export import export_store
from tests.conftest import Clock
from tests.helpers import identified
from tests.integration.test_event_log import balances_from_log

SHOP = c.Caller("acme", "shop-a", "storefront")
ADMIN = c.Caller("acme", "ops", "admin")
FINANCE = c.Caller("acme", "fin", "finance")
TEA = (c.NewLine("tea", "drinks", 3, 3333, 2000, "S1"),)  # 3 × 33.33, supply 20.00


def do(app: LedgerApplication, caller: c.Caller, command: c.Command) -> Outcome:
    [result] = app.run_batch([(caller, command)])
    assert isinstance(result, Outcome), result
    return result


# DOMAIN.md's worked example up to the payment of O1.
PAID = (c.EnrollReseller("e1", "alice", "", "", True),
        c.EnrollReseller("e2", "bob", "alice", "", False),
        c.EnrollReseller("e3", "carol", "bob", "", False),
        c.PlaceOrder("p1", "O1", "c1", "carol", "CNY", TEA),
        c.PayOrder("y1", "O1", "w1", 9999))


def settle_worked_example(app: LedgerApplication, clock: Clock, runner: ProjectionRunner,
                          models: ReadModels) -> None:
    """O1 paid, received at once, and settled once its window has passed: 2026-11-09,
    10:00 in Shanghai."""
    for command in (*PAID, c.CompleteOrder("d1", "O1")):
        do(app, SHOP, command)
    clock.advance(days=8)
    runner.catch_up()
    do(app, ADMIN, c.RunSettlement("s1", tuple(models.due_orders("acme", micros(clock()),
                                                                 100))))


def close_day(app: LedgerApplication, runner: ProjectionRunner, models: ReadModels,
              day: str, draw: Callable[[str], DayStatement] | None = None) -> None:
    """As FinanceService.CloseDay does it: shut the day, draw its statement from the read
    models once they hold the whole log (or with ``draw``), close the day with it."""
    close = c.CloseDay(f"close-{day}", day)
    do(app, FINANCE, c.BeginClosingDay.first_step_of(close))
    runner.catch_up()
    statement = (draw(day) if draw is not None else
                 models.day_statement("acme", day, "Asia/Shanghai"))
    do(app, FINANCE, dataclasses.replace(close, statement=statement))


def replayed(app: LedgerApplication, path: Path) -> dict[tuple[str, str, str], int]:
    export_store(app, path, Signer.generate())
    report = replay(read_export(path))
    assert report.ok, report.differences
    return {key: amount for key, amount in report.balances.items() if amount}


def test_replay_gives_the_worked_examples_figures_from_the_postings_alone(
        app: LedgerApplication, tmp_path: Path) -> None:
    for command in PAID:
        do(app, SHOP, command)
    assert replayed(app, tmp_path / "paid.jsonl") == {
        ("clearing:customer-funds", "CNY", "clearing"): -9999,
        ("supplier:S1", "CNY", "frozen"): 6000,
        ("reseller:carol", "CNY", "frozen"): 1599,
        ("reseller:bob", "CNY", "frozen"): 399,
        ("platform", "CNY", "frozen"): 2001,
    }
    do(app, SHOP, c.RefundOrder("r1", "O1", "r1", (c.RefundLineRequest(1, 3333),), ""))
    assert replayed(app, tmp_path / "refunded-once.jsonl") == {
        ("clearing:customer-funds", "CNY", "clearing"): -6666,
        ("supplier:S1", "CNY", "frozen"): 4000,  # 6000 − 2000
        ("reseller:carol", "CNY", "frozen"): 1066,  # 1599 − 533
        ("reseller:bob", "CNY", "frozen"): 266,  # 399 − 133
        ("platform", "CNY", "frozen"): 1334,  # 2001 − 667
    }
    do(app, SHOP, c.RefundOrder("r2", "O1", "r2", (c.RefundLineRequest(1, 6666),), ""))
    path = tmp_path / "refunded.jsonl"
    assert replayed(app, path) == {}  # every share back to zero
    report = replay(read_export(path))
    assert report.money_events == 3 and report.days == []
    assert report.balances[("reseller:carol", "CNY", "frozen")] == 0


def test_a_closed_days_statement_equals_its_replay(app: LedgerApplication, store_url: str,
                                                   clock: Clock, tmp_path: Path) -> None:
    """Two days closed in order, with a payment, a settlement, a payout paid and a refund
    after settlement (a clawback from available) between them."""
    runner = ProjectionRunner(app, store_url)
    runner.setup()
    models = ReadModels(store_url)
    try:
        settle_worked_example(app, clock, runner, models)
        do(app, FINANCE, identified("id-carol", "carol"))
        payout = app.answer(do(app, SHOP, c.RequestPayout(
            "w1", "reseller:carol", "CNY", 1000)).ref).payout_id
        do(app, FINANCE, c.ApprovePayout("a1", payout))
        do(app, FINANCE, c.MarkPayoutPaid("m1", payout, "wx-1"))
        clock.advance(days=1)  # 2026-11-10
        close_day(app, runner, models, "2026-11-09")
        do(app, SHOP, c.RefundOrder("r1", "O1", "r1", (c.RefundLineRequest(1, 3333),), ""))
        clock.advance(days=1)  # 2026-11-11
        close_day(app, runner, models, "2026-11-10")
        path = tmp_path / "acme.jsonl"
        export_store(app, path, Signer.generate())
        report = replay(read_export(path))
        assert report.ok, report.differences
        assert [(d.day, d.differences) for d in report.days] == [("2026-11-09", 0),
                                                                 ("2026-11-10", 0)]
        assert report.days[0].lines >= 8  # frozen, available, in flight, paid out…
        assert report.balances[("reseller:carol", "CNY", "available")] == 1599 - 1000 - 533
        assert report.balances[("reseller:carol", "CNY", "paid_out")] == 1000
        # The same balances as the domain's own events give (test_event_log's reading).
        assert {k: v for k, v in report.balances.items() if v} == {
            (account, currency, bucket): amount
            for (account, bucket, currency), amount in balances_from_log(app).items()}

        # A statement edited in the file: its lines that moved no longer digest to what it
        # says, and the difference is named. (A close records the lines that moved by their
        # count and digest: the statement's lines are a read model, paged.)
        lines = path.read_bytes().splitlines(keepends=True)
        edited = ""
        for n, line in enumerate(lines):
            if b"PeriodBook.DayClosed" in line and not edited:
                record = orjson.loads(line)
                state = orjson.loads(base64.b64decode(record["state"]))
                data = state["statement"]["_data_"]
                assert data[2] == [] and len(data[13]) == 64  # no lines in the event
                edited, data[13] = data[13], "0" * 64
                record["state"] = base64.b64encode(orjson.dumps(state)).decode()
                lines[n] = orjson.dumps(record) + b"\n"
        path.write_bytes(b"".join(lines))
        report = replay(read_export(path))
        assert [d.message.split(": ", 1)[1] for d in report.differences] == [
            f"2026-11-09: the digest of the lines that moved is {'0' * 64} in the statement, "
            f"{edited} replayed"]
        assert report.days[0].differences == 1
    finally:
        models.close()
        runner.stop()


# --- the reducer on hand-made entries: what the ledger never writes, or wrote long ago ----


def posting(account: str, bucket: str, amount: int, currency: str = "CNY") -> dict[str, object]:
    return {"_type_": "posting", "_data_": [account, bucket, currency, amount]}


def at(iso: str) -> dict[str, str]:
    return {"_type_": "datetime_iso", "_data_": iso}


def entries(*events: tuple[str, dict[str, object]]) -> list[Entry]:
    stream = UUID(int=1)
    return [Entry("acme", n, n + 1, 0, stream, n + 1, topic, orjson.dumps(state))
            for n, (topic, state) in enumerate(events)]


def reduce(*events: tuple[str, dict[str, object]]) -> Reducer:
    reducer = Reducer("acme")
    for e in entries(*events):
        reducer.entry(e.seq, e.position, e.topic, e.state)
    return reducer


OPENED = ("ledger.domain.periods:PeriodBook.Opened", {"platform_id": "acme",
                                                      "timezone": "Asia/Shanghai"})


def paid(when: str, amount: int = 100) -> tuple[str, dict[str, object]]:
    return ("ledger.domain.order:Order.Paid", {
        "paid_at": at(when), "postings": [posting("clearing:customer-funds", "clearing", -amount),
                                          posting("reseller:carol", "frozen", amount)]})


def closed(day: str, *lines: list[object], events: int = 0, first: int = 0,
           last: int = 0) -> tuple[str, dict[str, object]]:
    return ("ledger.domain.periods:PeriodBook.DayClosed", {"statement": {
        "_type_": "day_statement", "_data_": [
            day, "Asia/Shanghai", [{"_type_": "statement_line", "_data_": line}
                                   for line in lines], events, first, last, "0" * 64]}})


def test_postings_that_do_not_sum_to_zero_are_a_difference() -> None:
    event = ("ledger.domain.payout:Payout.Paid", {"at": at("2026-11-01T02:00:00+00:00"),
                                                   "postings": [posting("x", "in_flight", -5),
                                                                posting("x", "paid_out", 4)]})
    reducer = reduce(OPENED, event)
    assert [d.message for d in reducer.differences] == [
        "entry 1 (Payout.Paid): its postings sum to -1 CNY, not zero"]


def test_a_movement_booked_into_a_closed_day_is_a_difference() -> None:
    reducer = reduce(
        OPENED, paid("2026-11-01T02:00:00+00:00"),
        closed("2026-11-01", ["clearing:customer-funds", "CNY", 0, [["payment", -100]], -100,
                              "clearing"],
               ["reseller:carol", "CNY", 0, [["payment", 100]], 100, "frozen"],
               events=2, first=2, last=2),
        paid("2026-11-01T15:00:00+00:00"))  # 23:00 in Shanghai: still the closed day
    assert reducer.days[0].differences == 0
    assert [d.message for d in reducer.differences] == [
        "entry 3 books -100 CNY to clearing:customer-funds (clearing) on 2026-11-01, a day "
        "closed before it (entry 2 closed 2026-11-01)",
        "entry 3 books 100 CNY to reseller:carol (frozen) on 2026-11-01, a day closed before "
        "it (entry 2 closed 2026-11-01)"]


def test_a_statement_closed_before_lines_had_buckets_is_compared_per_account() -> None:
    """Such a statement has one line per account and currency, every bucket together (an
    empty bucket); its lines were written by field name, as values were then."""
    settled = ("ledger.domain.order:Order.Settled", {
        "settled_at": at("2026-11-02T02:00:00+00:00"),
        "postings": [posting("reseller:carol", "frozen", -100),
                     posting("reseller:carol", "available", 100)]})

    def old_line(account: str, opening: int, movements: list[list[object]],
                 closing: int) -> dict[str, object]:
        return {"account": account, "currency": "CNY", "opening": opening,
                "movements": movements, "closing": closing}

    def statement(carol_closing: int) -> tuple[str, dict[str, object]]:
        topic, state = closed("2026-11-02", events=2, first=3, last=3)
        lines = [old_line("clearing:customer-funds", -100, [], -100),
                 old_line("reseller:carol", 100, [["settlement", 0]], carol_closing)]
        state["statement"]["_data_"][2] = [  # type: ignore[index]
            {"_type_": "statement_line", "_data_": line} for line in lines]
        return topic, state

    # The settlement moves carol's money between buckets: every bucket together, it nets
    # to nothing, and the account's line shows no movement.
    good = reduce(OPENED, paid("2026-11-01T02:00:00+00:00"), settled, statement(100))
    assert good.differences == [] and good.days[0].lines == 2
    bad = reduce(OPENED, paid("2026-11-01T02:00:00+00:00"), settled, statement(90))
    assert [d.message for d in bad.differences] == [
        "entry 3: 2026-11-02 reseller:carol CNY: closing 90 in the statement, 100 replayed"]


def test_an_event_that_cannot_be_read_is_a_difference_naming_it() -> None:
    reducer = reduce(OPENED, ("ledger.domain.order:Order.Paid", {"paid_at": at("yesterday"),
                                                                 "postings": []}))
    assert reducer.differences[0].message.startswith(
        "entry 1 (Order.Paid) cannot be read as docs/audit-format.md says: ")


@pytest.mark.parametrize("topic", ["ledger.domain.payout:Payout.Approved",
                                   "ledger.domain.wallet:Wallet.Credited"])
def test_events_without_postings_move_nothing(topic: str) -> None:
    reducer = reduce(OPENED, (topic, {"by": "fin", "at": at("2026-11-01T02:00:00+00:00"),
                                      "amount": 5}))
    assert reducer.differences == [] and reducer.money_events == 0 and not reducer.balances
