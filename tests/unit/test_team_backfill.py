"""A platform moving onto the ledger brings its tree with the dates its people joined
(DOMAIN.md, "Team numbers", Backfill): an enrolment may carry a past date, never in the
future and not before its sponsor's; an order cannot be paid before its seller enrolled.

The rules on the domain; through the application on the stores in
tests/integration/test_team_backfill.py, over gRPC and `ledger team import` in
tests/e2e/test_team_backfill.py.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from ledger.application import commands as c
from ledger.domain.errors import InvalidInput, RuleViolation
from ledger.domain.team import (
    Listed,
    Reseller,
    enroll,
    enrolment_date,
    sponsor_loop,
    sponsors_first,
)
from tests.integration.test_event_log import asdict_fingerprint

NOW = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)  # the tests' clock (tests/conftest.py)
JOINED = datetime(2025, 3, 10, 4, 0, tzinfo=UTC)


def member(reseller_id: str, enrolled_at: datetime, sponsor: Reseller | None = None,
           rank: str = "") -> Reseller:
    return enroll("acme", reseller_id, sponsor=sponsor, customer_id="", asked=enrolled_at,
                  now=NOW, rank=rank)


def test_an_enrolment_is_never_dated_in_the_future() -> None:
    with pytest.raises(InvalidInput) as raised:
        enrolment_date("bob", NOW + timedelta(seconds=1), now=NOW, sponsor=None)
    [(field, why)] = raised.value.violations
    assert field == "enrolled_at" and why.startswith("must not be in the future")
    assert enrolment_date("bob", NOW, now=NOW, sponsor=None) == NOW


def test_a_member_cannot_enrol_before_its_sponsor_and_both_dates_are_named() -> None:
    alice = member("alice", JOINED)
    with pytest.raises(RuleViolation) as raised:
        member("bob", JOINED - timedelta(days=1), sponsor=alice)
    assert raised.value.reason == "ENROLLED_BEFORE_SPONSOR"
    assert "2025-03-09T04:00:00+00:00" in raised.value.message
    assert "2025-03-10T04:00:00+00:00" in raised.value.message
    assert member("bob", JOINED, sponsor=alice).enrolled_at == JOINED  # the same moment: fine


def test_an_undated_enrolment_joins_now_and_never_before_its_sponsor() -> None:
    """Undated, a reseller joins now; should the sponsor have been enrolled a moment ago by
    a server whose clock is ahead, at the sponsor's time, so no member precedes its sponsor."""
    assert enrolment_date("bob", None, now=NOW, sponsor=member("alice", JOINED)) == NOW
    alice = enroll("acme", "alice", sponsor=None, customer_id="", asked=None,
                   now=NOW + timedelta(seconds=2))
    assert enrolment_date("bob", None, now=NOW, sponsor=alice) == NOW + timedelta(seconds=2)


def test_a_member_brought_in_holds_its_rank_from_its_enrolment() -> None:
    gold = member("alice", JOINED, rank="gold")
    assert [type(e).__name__ for e in gold.collect_events()] == ["Enrolled", "RankSet"]
    assert (gold.rank, gold.rank_at(JOINED), gold.rank_at(NOW)) == ("gold", "gold", "gold")


def test_an_order_cannot_be_paid_before_its_seller_enrolled() -> None:
    carol = member("carol", JOINED)
    with pytest.raises(RuleViolation) as raised:
        carol.check_enrolled_by(JOINED - timedelta(minutes=1))
    assert raised.value.reason == "PAID_BEFORE_SELLER_ENROLLED"
    assert "2025-03-10T03:59:00+00:00" in raised.value.message
    assert "2025-03-10T04:00:00+00:00" in raised.value.message
    carol.check_enrolled_by(JOINED)


def test_a_tree_listed_in_any_order_is_ordered_sponsors_first_then_by_date() -> None:
    def day(n: int) -> datetime:
        return JOINED + timedelta(days=n)

    listed = [Listed("carol", "bob", day(3)), Listed("dave", "carol", day(1)),
              Listed("bob", "alice", day(2)), Listed("alice", "", day(0)),
              Listed("erin", "zed", day(1)), Listed("x", "y", day(1)), Listed("y", "x", day(1)),
              Listed("under-x", "x", day(1)), Listed("bob", "alice", day(9)),
              Listed("now", "", None), Listed("frank", "alice", day(2))]
    ordered, looped = sponsors_first(listed)
    # Sponsors first; otherwise earliest joined first. Dave, dated before his sponsor, comes
    # right after her, to be refused for that; Bob's second listing right after his first.
    assert [listed[i].reseller_id for i in ordered] == [
        "alice", "erin", "bob", "frank", "carol", "dave", "bob", "now"]
    assert ordered[2:4] == [2, 10] and ordered[6] == 8
    assert [listed[i].reseller_id for i in looped] == ["x", "y", "under-x"]
    assert sponsor_loop(listed, 5).message.endswith("loop: x → y → x")
    assert sponsor_loop(listed, 7).message == \
        "the sponsors above under-x in this import loop: x → y → x"
    assert sponsor_loop(listed, 7).reason == "SPONSOR_CYCLE"


def test_an_undated_enrolment_keeps_the_fingerprint_it_had_before_dates_existed() -> None:
    undated = c.EnrollReseller("e1", "bob", "alice", "", False)
    assert undated.fingerprint() == asdict_fingerprint(undated,
                                                       {"idempotency_key", "enrolled_at"})
    assert dataclasses.replace(undated, enrolled_at=JOINED).fingerprint() != \
        undated.fingerprint()
