"""Dated enrolments and backdated payments through the application, on SQLite and
PostgreSQL (DOMAIN.md, "Team numbers", Backfill). The domain's rules are in
tests/unit/test_team_backfill.py, the same over gRPC in tests/e2e/test_team_backfill.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ledger.application import commands as c
from ledger.application.ledger_app import LedgerApplication
from ledger.domain.errors import InvalidInput, LedgerError, RuleViolation
from tests.conftest import Clock
from tests.integration.test_event_log import tea
from tests.unit.test_team_backfill import JOINED

SHOP = c.Caller("acme", "shop-a", "storefront")


def do(app: LedgerApplication, *commands: c.Command) -> list[object]:
    return list(app.run_batch([(SHOP, command) for command in commands]))


def dated_team(app: LedgerApplication) -> None:
    """Alice ← Bob ← Carol, brought in with the days they joined."""
    results = do(app,
                 c.ImportReseller("i1", "alice", "", "", True, JOINED),
                 c.ImportReseller("i2", "bob", "alice", "", False, JOINED + timedelta(days=30),
                                  "gold"),
                 c.ImportReseller("i3", "carol", "bob", "", False, JOINED + timedelta(days=60)))
    assert not [r for r in results if isinstance(r, BaseException)], results


def backfill(order_id: str, **times: datetime) -> c.ImportOrder:
    return c.ImportOrder(f"import:{order_id}", order_id, f"c-{order_id}", "carol", "CNY", tea(),
                         payment_id=f"w-{order_id}", **times)


def test_a_backdated_payment_before_its_seller_enrolled_is_refused(
        app: LedgerApplication) -> None:
    dated_team(app)
    carol_joined = JOINED + timedelta(days=60)
    early, placed_early, late = do(
        app,
        backfill("EARLY", paid_at=carol_joined - timedelta(hours=1)),
        # Paid when placed: the payment takes the placing's date.
        backfill("PLACED-EARLY", placed_at=carol_joined - timedelta(hours=1)),
        backfill("LATE", placed_at=carol_joined - timedelta(hours=1), paid_at=carol_joined))
    for refusal in (early, placed_early):
        assert isinstance(refusal, RuleViolation), refusal
        assert refusal.reason == "PAID_BEFORE_SELLER_ENROLLED"
        assert carol_joined.isoformat() in refusal.message
    assert not isinstance(late, BaseException), late
    order = app.order(SHOP, "LATE")
    assert order.upline_chain == ("carol", "bob") and order.paid_at == carol_joined
    for nothing_written in ("EARLY", "PLACED-EARLY"):
        with pytest.raises(LedgerError):
            app.order(SHOP, nothing_written)


def test_dated_enrolments_on_the_store(app: LedgerApplication, clock: Clock) -> None:
    dated_team(app)
    future, before_sponsor, unknown = do(
        app,
        c.EnrollReseller("e1", "dan", "carol", "", False, clock.now + timedelta(minutes=1)),
        c.EnrollReseller("e2", "dan", "carol", "", False, JOINED),
        c.EnrollReseller("e3", "dan", "nobody", "", False, JOINED))
    assert isinstance(future, InvalidInput) and future.violations[0][0] == "enrolled_at"
    assert isinstance(before_sponsor, RuleViolation)
    assert before_sponsor.reason == "ENROLLED_BEFORE_SPONSOR"
    assert isinstance(unknown, LedgerError) and unknown.reason == "SPONSOR_NOT_FOUND"
    dan = c.EnrollReseller("e4", "dan", "carol", "", False, JOINED + timedelta(days=90))
    [first], [again] = do(app, dan), do(app, dan)
    assert not first.replayed and again.replayed  # type: ignore[attr-defined]
    stored = app.reseller("acme", "dan")
    assert (stored.enrolled_at, stored.sponsor_id) == (JOINED + timedelta(days=90), "carol")
    bob = app.reseller("acme", "bob")
    assert (bob.rank, bob.rank_at(JOINED + timedelta(days=30))) == ("gold", "gold")
