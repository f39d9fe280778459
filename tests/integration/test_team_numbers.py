"""DOMAIN.md "Team numbers", figure by figure: now, as of a time and as of a log position.

Each scenario writes through the application (commands, a test clock) and reads the read
models the way GetTeamStats does (ReadModels.team_stats), so every rule is shown without
gRPC; the as-of-position request itself, through the API, is in
tests/e2e/test_team_numbers.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger.projections.clock import END_OF_TIME, Calendar, micros
from ledger.projections.reader import ReadModels
from ledger.projections.runner import ProjectionRunner
from ledger.projections.team_queries import TeamStats

from ledger.application import commands as c
from ledger.application.ledger_app import LedgerApplication
from ledger.bootstrap import build_application
from tests.conftest import Clock, drop_schema, example_store

SHOP = c.Caller("acme", "shop-a", "storefront")
ADMIN = c.Caller("acme", "ops", "admin")
NOV, DEC = "2026-11", "2026-12"
TEA = (c.NewLine("tea", "", 3, 3333, 2000, "S1"),)  # 9999


@dataclass
class Ledger:
    """The application, its read models, and the test clock: write, then read as of."""

    app: LedgerApplication
    runner: ProjectionRunner
    models: ReadModels
    clock: Clock
    n: int = 0

    def do(self, *commands: c.Command, caller: c.Caller = SHOP) -> int:
        """Runs the commands; returns the log position they reached."""
        position = 0
        for command in commands:
            [result] = self.app.run_batch([(caller, command)])
            if isinstance(result, BaseException):
                raise result
            position = result.log_position
        self.runner.catch_up()
        return position

    def key(self) -> str:
        self.n += 1
        return f"k{self.n}"

    def enroll(self, reseller: str, sponsor: str = "") -> int:
        return self.do(c.EnrollReseller(self.key(), reseller, sponsor, "", not sponsor))

    def sale(self, order_id: str, seller: str, amount: int = 9999) -> int:
        return self.do(c.PlaceOrder(self.key(), order_id, f"c-{order_id}", seller, "CNY", TEA),
                       c.PayOrder(self.key(), order_id, f"w-{order_id}", amount))

    def refund(self, order_id: str, amount: int) -> int:
        return self.do(c.RefundOrder(self.key(), order_id, self.key(),
                                     (c.RefundLineRequest(1, amount),), ""))

    def move(self, reseller: str, sponsor: str) -> int:
        return self.do(c.MoveReseller(self.key(), reseller, sponsor, "reorg"), caller=ADMIN)

    def target(self, reseller: str, month: str, amount: int) -> int:
        return self.do(c.SetTeamTarget(self.key(), reseller, month, "CNY", amount),
                       caller=ADMIN)

    def now(self) -> int:
        return micros(self.clock())

    def stats(self, reseller: str, month: str, *, at: int = END_OF_TIME,
              position: int = END_OF_TIME) -> TeamStats:
        return self.models.team_stats("acme", reseller, month, at, position)


@pytest.fixture
def ledger(store_url: str, clock: Clock) -> Iterator[Ledger]:
    app = build_application(store_url, clock)
    runner = ProjectionRunner(app, store_url)
    runner.setup()
    models = ReadModels(store_url, Calendar())
    try:
        yield Ledger(app, runner, models, clock)
    finally:
        models.close()
        runner.stop()
        app.close()


def test_the_target_is_the_last_set_for_the_month_at_or_before_the_moment_read(
    ledger: Ledger,
) -> None:
    ledger.enroll("alice")
    before_any = ledger.now()
    position_before = ledger.sale("O1", "alice", 9999)
    ledger.clock.advance(minutes=1)
    ledger.clock.advance(days=2)
    first = ledger.target("alice", NOV, 3_000_000)
    between = ledger.now()
    ledger.clock.advance(days=2)
    second = ledger.target("alice", NOV, 3_333_300)
    now = ledger.stats("alice", NOV)
    assert now.targets == {"CNY": 3_333_300}
    assert now.progress_bps("CNY") == 9999 * 10_000 // 3_333_300
    assert ledger.stats("alice", NOV, at=between).targets == {"CNY": 3_000_000}
    # Before any target was set: none, and no progress (not one set later).
    early = ledger.stats("alice", NOV, at=before_any)
    assert early.targets == {} and early.progress_bps("CNY") == 0
    assert ledger.stats("alice", NOV, position=first).targets == {"CNY": 3_000_000}
    assert ledger.stats("alice", NOV, position=second).targets == {"CNY": 3_333_300}
    assert ledger.stats("alice", NOV, position=position_before).targets == {}


def test_progress_is_zero_without_a_target_or_with_nothing_sold(ledger: Ledger) -> None:
    ledger.enroll("alice")
    ledger.target("alice", NOV, 100_000)
    assert ledger.stats("alice", NOV).progress_bps("CNY") == 0  # team GMV 0
    ledger.sale("O1", "alice", 9999)
    ledger.clock.advance(days=40)  # December: a refund larger than December's sales
    ledger.refund("O1", 9999)
    ledger.target("alice", DEC, 100_000)
    december = ledger.stats("alice", DEC)
    assert december.team_gmv == {"CNY": -9999} and december.progress_bps("CNY") == 0
    assert ledger.stats("alice", NOV).progress_bps("CNY") == 9999 * 10_000 // 100_000


def test_a_refund_lands_in_the_month_it_is_recorded_and_follows_its_orders_teams(
    ledger: Ledger,
) -> None:
    ledger.enroll("alice")
    ledger.enroll("bob", "alice")
    ledger.enroll("zed")
    ledger.clock.advance(days=19)  # 2026-11-20
    ledger.sale("O1", "bob")
    ledger.clock.advance(days=5)
    november_25 = ledger.now()
    ledger.clock.advance(days=10)  # 2026-12-05
    moved = ledger.move("bob", "zed")
    before_refund = ledger.now()
    ledger.clock.advance(minutes=1)
    refunded = ledger.refund("O1", 3333)
    assert ledger.stats("bob", NOV).own_sales == {"CNY": 9999}
    assert ledger.stats("bob", DEC).own_sales == {"CNY": -3333}  # a month can be negative
    # The refund comes off the team the order counted for (alice's), not bob's new one.
    assert ledger.stats("alice", DEC).team_gmv == {"CNY": -3333}
    assert ledger.stats("zed", DEC).team_gmv == {}
    assert ledger.stats("bob", NOV, at=november_25).own_sales == {"CNY": 9999}
    assert ledger.stats("bob", DEC, at=before_refund).own_sales == {}
    assert ledger.stats("bob", DEC, position=moved).own_sales == {}
    assert ledger.stats("bob", DEC, position=refunded).own_sales == {"CNY": -3333}


def test_new_members_are_those_joined_in_the_month_still_in_the_team_when_read(
    ledger: Ledger,
) -> None:
    ledger.enroll("alice")
    ledger.enroll("bob")
    joined = ledger.enroll("x", "alice")
    both = ledger.enroll("y", "x")
    ledger.clock.advance(days=3)
    while_under_alice = ledger.now()
    ledger.clock.advance(minutes=1)
    moved = ledger.move("x", "bob")  # x and y leave alice's team
    assert ledger.stats("alice", NOV).new_members == 0
    assert ledger.stats("bob", NOV).new_members == 2
    assert ledger.stats("alice", NOV, at=while_under_alice).new_members == 2
    assert ledger.stats("alice", NOV, position=joined).new_members == 1
    assert ledger.stats("alice", NOV, position=both).new_members == 2
    assert ledger.stats("bob", NOV, position=both).new_members == 0
    assert ledger.stats("bob", NOV, position=moved).new_members == 2
    assert ledger.stats("alice", DEC).new_members == 0  # nobody joined in December


def test_members_at_start_and_active_members_follow_the_tree_when_the_month_began(
    ledger: Ledger,
) -> None:
    ledger.enroll("alice")
    ledger.enroll("bob", "alice")
    ledger.enroll("carol", "bob")
    ledger.enroll("zed")
    ledger.clock.advance(days=30)  # 2026-12-01, 10:00 in Shanghai: December has begun
    ledger.enroll("dave", "bob")  # joins in December: new, not at the start
    ledger.move("carol", "zed")
    before_sales = ledger.now()
    ledger.clock.advance(minutes=1)
    ledger.sale("O1", "carol")
    sold = ledger.sale("O2", "dave")
    bob = ledger.stats("bob", DEC)
    assert (bob.members_at_start, bob.active_members, bob.new_members) == (1, 1, 1)
    assert bob.retention_bps == 10_000
    alice = ledger.stats("alice", DEC)
    assert (alice.members_at_start, alice.active_members) == (2, 1)  # bob idle, carol sold
    assert alice.retention_bps == 5_000
    zed = ledger.stats("zed", DEC)
    assert (zed.members_at_start, zed.active_members, zed.retention_bps) == (0, 0, 0)
    assert ledger.stats("alice", DEC, at=before_sales).active_members == 0
    assert ledger.stats("alice", DEC, position=sold).active_members == 1
    november = ledger.stats("alice", NOV)  # bob and carol joined, but carol has moved out
    assert (november.members_at_start, november.new_members) == (0, 1)


def test_a_backfilled_order_counts_from_when_it_was_paid_and_as_recorded(
    ledger: Ledger,
) -> None:
    enrolled = ledger.enroll("alice")
    ledger.clock.advance(days=20)  # 2026-11-21
    paid_at = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
    before = ledger.now()
    imported = ledger.do(c.ImportOrder(ledger.key(), "B1", "c1", "alice", "CNY", TEA, "w-B1",
                                       False, None, paid_at, None))
    assert ledger.stats("alice", NOV).own_sales == {"CNY": 9999}
    # As of a time after its payment, though recorded later: it counts.
    assert ledger.stats("alice", NOV, at=micros(paid_at + timedelta(hours=1))).own_sales \
        == {"CNY": 9999}
    assert ledger.stats("alice", NOV, at=micros(paid_at) - 1).own_sales == {}
    # As of a log position before its import: it had not been recorded.
    assert ledger.stats("alice", NOV, position=enrolled).own_sales == {}
    assert ledger.stats("alice", NOV, position=imported).own_sales == {"CNY": 9999}
    assert ledger.stats("alice", NOV, at=before, position=imported).active_members == 0


# --- properties ---------------------------------------------------------------------------


steps = st.lists(st.one_of(
    st.tuples(st.just("enroll"), st.integers(0, 9), st.integers(-1, 9)),
    st.tuples(st.just("move"), st.integers(0, 9), st.integers(-1, 9)),
    st.tuples(st.just("sale"), st.integers(0, 9), st.just(0)),
    st.tuples(st.just("days"), st.integers(1, 25), st.just(0)),
), max_size=30)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps)
def test_new_members_never_exceed_the_team_nor_active_the_members_at_start(
    store_url: str, tmp_path: Path, plan: list[tuple[str, int, int]],
) -> None:
    url = example_store(store_url, tmp_path)
    clock = Clock()
    app = build_application(url, clock)
    runner = ProjectionRunner(app, url)
    runner.setup()
    models = ReadModels(url, Calendar())
    ledger = Ledger(app, runner, models, clock)
    moments: list[tuple[int, int]] = []
    try:
        for n, (kind, a, b) in enumerate(plan):
            try:
                if kind == "enroll":
                    moments.append((ledger.now(), ledger.enroll(f"r{a}", f"r{b}" if b >= 0
                                                                else "")))
                elif kind == "move":
                    moments.append((ledger.now(), ledger.move(f"r{a}", f"r{b}" if b >= 0
                                                              else "")))
                elif kind == "sale":
                    moments.append((ledger.now(), ledger.sale(f"O{n}", f"r{a}")))
                else:
                    clock.advance(days=a)
            except Exception:  # refused (unknown sponsor, a loop, …): writes nothing
                continue
        from ledger.projections.team_queries import subtree

        for at, position in [*moments, (END_OF_TIME, END_OF_TIME)]:
            for r in range(10):
                for month in (NOV, DEC, "2027-01"):
                    stats = ledger.stats(f"r{r}", month, at=at, position=position)
                    with models.db.transaction(models.db.connect(), write=False) as cur:
                        size = len(subtree(cur, "acme", f"r{r}", max_depth=100,
                                           at=at if at < END_OF_TIME else END_OF_TIME,
                                           offset=0, limit=1000))
                    if position == END_OF_TIME:
                        assert stats.new_members <= size
                    assert stats.active_members <= stats.members_at_start
                    assert 0 <= stats.retention_bps <= 10_000
    finally:
        models.close()
        runner.stop()
        app.close()
        if not url.startswith("sqlite"):
            drop_schema(url)


# --- a month's figures for each leader (were ReportService tests over gRPC) ---------------


def test_team_stats_for_a_month(ledger: Ledger) -> None:
    # The clock starts on 2026-11-01 10:00 in Shanghai.
    ledger.enroll("alice")
    ledger.enroll("bob", "alice")
    ledger.enroll("carol", "bob")
    ledger.enroll("dave", "bob")
    ledger.target("alice", DEC, 40000)
    ledger.clock.advance(days=30)  # 2026-12-01: everyone above was present at December's start
    ledger.enroll("erin", "carol")  # new in December
    ledger.sale("O1", "carol")  # carol sells 99.99
    for order_id, seller, amount in (("O2", "dave", 10000), ("O3", "erin", 5000)):
        ledger.do(c.PlaceOrder(ledger.key(), order_id, f"c-{order_id}", seller, "CNY",
                               (c.NewLine("cup", "", 1, amount, 4000, "S1"),)),
                  c.PayOrder(ledger.key(), order_id, f"w-{order_id}", amount))
    mid_december = micros(ledger.clock.advance(days=10))
    ledger.clock.advance(days=30)  # January: a refund of a December order lands in January
    ledger.refund("O1", 3333)
    december = ledger.stats("alice", DEC)
    assert december.currencies == ["CNY"]
    assert (december.own_sales.get("CNY", 0), december.team_gmv["CNY"],
            december.targets["CNY"], december.progress_bps("CNY")) == (0, 24999, 40000, 6249)
    assert december.new_members == 1
    # Present at December's start: bob, carol, dave; carol and dave sold (erin is new).
    assert (december.members_at_start, december.active_members) == (3, 2)
    assert december.retention_bps == 6666
    bob = ledger.stats("bob", DEC)
    assert (bob.team_gmv["CNY"], bob.members_at_start, bob.active_members) == (24999, 2, 2)
    carol = ledger.stats("carol", DEC)
    assert (carol.own_sales["CNY"], carol.team_gmv["CNY"]) == (9999, 14999)
    assert ledger.stats("alice", "2027-01").team_gmv["CNY"] == -3333
    assert ledger.stats("alice", NOV).new_members == 3
    early = ledger.stats("alice", DEC, at=micros(datetime(2026, 12, 1, 1, tzinfo=UTC)))
    assert early.team_gmv.get("CNY", 0) == 0
    assert early.new_members == 0
    assert ledger.stats("alice", DEC, at=mid_december).team_gmv["CNY"] == 24999


def test_a_member_moved_mid_month_is_active_for_the_team_they_were_in_when_it_began(
        ledger: Ledger) -> None:
    """Active members are members present at the month's start who sold that month: one
    who moved in mid-month counts for the team they were in when the month began, not for
    the team they joined (whose members at the start they were not among)."""
    ledger.enroll("alice")
    ledger.enroll("bob", "alice")
    ledger.enroll("carol", "bob")
    ledger.enroll("erin", "bob")
    ledger.enroll("zed")
    ledger.clock.advance(days=30)  # 2026-12-01
    ledger.move("carol", "zed")
    ledger.sale("O1", "carol")
    ledger.sale("O2", "erin")

    def stats(leader: str) -> tuple[int, int]:
        got = ledger.stats(leader, DEC)
        return got.members_at_start, got.active_members

    assert stats("zed") == (0, 0)  # carol joined zed's team in December
    assert stats("bob") == (2, 2)  # carol and erin at the start, and both sold in December
    assert stats("alice") == (3, 2)
