"""A log written before idempotency keys had a table of their own (by main's code of
2026-12-07, kept as tests/fixtures/log-2026-12-07.sqlite3) still serves: its keys are copied
into the table at start, their retries replay the first answers at the receipts given then,
and the log rebuilds to the balances it held.

The fixture: DOMAIN.md's team, O1 paid, received and settled; O2 paid and a third refunded;
Carol identified and a payout of 10.00 requested. 39 events, 12 of them idempotency records.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ledger.projections.reader import ReadModels
from ledger.projections.runner import ProjectionRunner

from ledger.application import commands as c
from ledger.application.ledger_app import Outcome
from ledger.bootstrap import build_application
from ledger.domain.errors import RuleViolation
from tests.conftest import Clock
from tests.integration.test_event_log import balances_from_log

FIXTURE = Path(__file__).parents[1] / "fixtures" / "log-2026-12-07.sqlite3"
SHOP = c.Caller("acme", "shop-a", "storefront")
TEA = (c.NewLine("tea", "drinks", 3, 3333, 2000, "S1"),)
# The keys the fixture recorded, with the log position of each record (its receipt then).
OLD_KEYS = ("e1", "e2", "e3", "p1", "y1", "d1", "p2", "y2", "r1")
# Balances as main's code of 2026-12-07 computed them from the fixture's postings.
BALANCES = {
    ("clearing:customer-funds", "clearing", "CNY"): -16665,
    ("platform", "available", "CNY"): 2001,
    ("platform", "frozen", "CNY"): 1334,
    ("reseller:bob", "available", "CNY"): 399,
    ("reseller:bob", "frozen", "CNY"): 266,
    ("reseller:carol", "available", "CNY"): 599,
    ("reseller:carol", "frozen", "CNY"): 1066,
    ("reseller:carol", "in_flight", "CNY"): 1000,
    ("supplier:S1", "available", "CNY"): 6000,
    ("supplier:S1", "frozen", "CNY"): 4000,
}


@pytest.fixture
def old_log(tmp_path: Path) -> str:
    path = tmp_path / "ledger.sqlite3"
    shutil.copy(FIXTURE, path)
    return f"sqlite:///{path}"


def record_positions(app: object) -> dict[str, int]:
    """Each old key's record, as the log holds it: the receipt it answered with."""
    out = {}
    for item in app.recorder.select_notifications(1, 1000):  # type: ignore[attr-defined]
        if item.topic.endswith("IdempotencyRecord.Recorded"):
            event = app.mapper.to_domain_event(item)  # type: ignore[attr-defined]
            out[event.key] = item.id
    return out


def test_an_old_logs_keys_replay_their_first_answers_at_their_old_receipts(
        old_log: str, clock: Clock) -> None:
    app = build_application(old_log, clock)
    try:
        before = app.log_position()
        receipts = record_positions(app)
        assert set(OLD_KEYS) <= set(receipts) and len(receipts) == 12
        commands = {
            "e1": c.EnrollReseller("e1", "alice", "", "", True),
            "e2": c.EnrollReseller("e2", "bob", "alice", "", False),
            "e3": c.EnrollReseller("e3", "carol", "bob", "", False),
            "p1": c.PlaceOrder("p1", "O1", "c1", "carol", "CNY", TEA),
            "y1": c.PayOrder("y1", "O1", "w1", 9999),
            "d1": c.CompleteOrder("d1", "O1"),
            "p2": c.PlaceOrder("p2", "O2", "c2", "carol", "CNY", TEA),
            "y2": c.PayOrder("y2", "O2", "w2", 9999),
            "r1": c.RefundOrder("r1", "O2", "r1", (c.RefundLineRequest(1, 3333),),
                                "returned"),
        }
        answers = app.run_batch([(SHOP, commands[k]) for k in OLD_KEYS])
        for key, answer in zip(OLD_KEYS, answers, strict=True):
            assert isinstance(answer, Outcome), (key, answer)
            assert answer.replayed and answer.log_position == receipts[key], key
        assert app.log_position() == before  # nothing written again
        [reused] = app.run_batch([(SHOP, c.PayOrder("y1", "O2", "w9", 1))])
        assert isinstance(reused, RuleViolation)
        assert reused.reason == "IDEMPOTENCY_KEY_REUSED"
    finally:
        app.close()


def test_an_old_log_rebuilds_to_its_balances_and_takes_new_writes(
        old_log: str, clock: Clock) -> None:
    app = build_application(old_log, clock)
    try:
        assert balances_from_log(app) == BALANCES
        runner = ProjectionRunner(app, old_log)
        runner.setup()
        models = ReadModels(old_log)
        try:
            runner.catch_up()
            for (account, bucket, currency), amount in BALANCES.items():
                [held] = [b for b in models.balances("acme", account)
                          if b.currency == currency]
                assert getattr(held, bucket) == amount, (account, bucket)
            before = app.log_position()
            [placed] = app.run_batch([(SHOP, c.PlaceOrder("p3", "O3", "c3", "carol", "CNY",
                                                          TEA))])
            assert isinstance(placed, Outcome) and not placed.replayed
            # Its receipt is its last event; its key is beside the log, not in it.
            assert placed.log_position == app.log_position() > before
            written = app.recorder.select_notifications(before + 1, 100)
            assert not [n for n in written if "Idempotency" in n.topic]
        finally:
            models.close()
            runner.stop()
    finally:
        app.close()
    # A second start copies nothing again: the keys were copied once.
    again = build_application(old_log, clock)
    try:
        [replayed] = again.run_batch([(SHOP, c.EnrollReseller("e1", "alice", "", "", True))])
        assert isinstance(replayed, Outcome) and replayed.replayed
    finally:
        again.close()
