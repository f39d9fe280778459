"""One ImportResellers message planned before anything is sent: sponsors ahead of their
members, and members whose sponsors loop refused with the loop named."""

from __future__ import annotations

from datetime import UTC, datetime

from ledger.application.commands import ImportReseller
from ledger.application.tree_import import plan_import


def member(rid: str, sponsor: str, day: int) -> ImportReseller:
    return ImportReseller(f"reseller:{rid}", rid, sponsor, "", not sponsor,
                          datetime(2026, 1, day, tzinfo=UTC))


def test_members_are_queued_sponsors_first_and_looping_ones_refused() -> None:
    listed = [member("carol", "bob", 3), member("x", "y", 5), member("bob", "alice", 2),
              member("y", "x", 6), member("alice", "", 1), member("zed", "x", 7)]
    plan = plan_import(listed)
    assert [m.reseller_id for m in plan.queued] == ["alice", "bob", "carol"]
    assert plan.queued[0] is listed[4]  # the commands themselves, unchanged
    refused = dict(plan.refused)
    assert sorted(refused) == ["x", "y", "zed"]
    assert all(error.reason == "SPONSOR_CYCLE" for error in refused.values())
