"""A platform moving onto the ledger: 1,000 members brought in with the dates they joined over
twelve months, and a year of their sales backfilled with the dates they were paid. Every
month's team numbers for several leaders must equal a computation written here from
DOMAIN.md "Team numbers" alone, member by member."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ledger.projections.clock import Calendar
from ledger.projections.reader import ReadModels
from ledger.projections.runner import ProjectionRunner

from ledger.application import commands as c
from ledger.bootstrap import build_application
from tests.conftest import Clock

SHOP = c.Caller("acme", "shop-a", "storefront")
ZONE = ZoneInfo("Asia/Shanghai")
MONTHS = [f"{2025 + (m + 11) // 12}-{(m + 11) % 12 + 1:02d}" for m in range(12)]  # 2025-12…
MEMBERS = 1_000
ORDERS = 2_400


@dataclass(frozen=True)
class Order:
    seller: str
    amount: int
    paid_at: datetime


def month_of(at: datetime) -> str:
    return at.astimezone(ZONE).strftime("%Y-%m")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    year, mon = map(int, month.split("-"))
    start = datetime(year, mon, 1, tzinfo=ZONE)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=ZONE)
    return start.astimezone(UTC), end.astimezone(UTC)


def generate(seed: int) -> tuple[dict[str, tuple[str, datetime]], list[Order]]:
    """Members (sponsor, joined), sponsors joining first; orders by members already joined."""
    rng = random.Random(seed)
    first, last = month_bounds(MONTHS[0])[0], month_bounds(MONTHS[-1])[1]
    span = (last - first).total_seconds()
    joined = sorted(first + timedelta(seconds=rng.uniform(0, span * 0.9))
                    for _ in range(MEMBERS))
    members: dict[str, tuple[str, datetime]] = {}
    ids: list[str] = []
    for n, at in enumerate(joined):
        rid = f"m{n}"
        # Mostly under a recent joiner: deep chains, as real teams grow.
        sponsor = "" if n < 3 else ids[max(0, n - 1 - int(rng.expovariate(1 / 30)))]
        members[rid] = (sponsor, at.replace(microsecond=0))
        ids.append(rid)
    orders = []
    for _ in range(ORDERS):
        seller = rng.choice(ids)
        since = members[seller][1]
        paid = since + timedelta(seconds=rng.uniform(60, max(120, (last - since).total_seconds()
                                                            - 60)))
        orders.append(Order(seller, rng.randint(100, 50_000), min(paid, last -
                                                                 timedelta(minutes=1))))
    return members, orders


def expected(members: dict[str, tuple[str, datetime]], orders: list[Order], leader: str,
             month: str) -> dict[str, int]:
    """DOMAIN.md "Team numbers" for a tree that never moved, read now."""
    below: dict[str, list[str]] = defaultdict(list)
    for rid, (sponsor, _) in members.items():
        below[sponsor].append(rid)
    team, todo = set(), list(below[leader])
    while todo:
        rid = todo.pop()
        team.add(rid)
        todo += below[rid]
    start, end = month_bounds(month)
    at_start = {rid for rid in team if members[rid][1] < start}
    paid = [o for o in orders if start <= o.paid_at < end]
    sellers = {o.seller for o in paid}
    active = len(at_start & sellers)
    return {
        "own": sum(o.amount for o in paid if o.seller == leader),
        "gmv": sum(o.amount for o in paid if o.seller == leader or o.seller in team),
        "new": sum(1 for rid in team if start <= members[rid][1] < end),
        "at_start": len(at_start), "active": active,
        "retention": active * 10_000 // len(at_start) if at_start else 0,
    }


def test_a_migrated_tree_gives_every_months_numbers_as_domain_md_defines_them(
    store_url: str,
) -> None:
    members, orders = generate(seed=7)
    clock = Clock(datetime(2026, 12, 15, 2, 0, tzinfo=UTC))
    app = build_application(store_url, clock)
    runner = ProjectionRunner(app, store_url, batch_size=5_000)
    runner.setup()
    models = ReadModels(store_url, Calendar())
    try:
        enrolments = [(SHOP, c.EnrollReseller(f"e-{rid}", rid, sponsor, "", not sponsor,
                                              enrolled_at=joined))
                      for rid, (sponsor, joined) in members.items()]
        sales = [(SHOP, c.ImportOrder(f"o{n}", f"O{n}", f"c{n}", o.seller, "CNY",
                                      (c.NewLine("tea", "", 1, o.amount, o.amount // 2, "S1"),),
                                      f"w{n}", False, None, o.paid_at, None))
                 for n, o in enumerate(orders)]
        for work in (enrolments, sales):
            for start in range(0, len(work), 200):
                for result in app.run_batch(work[start:start + 200]):
                    assert not isinstance(result, BaseException), result
        runner.catch_up()
        sizes = defaultdict(int)
        for sponsor, _ in members.values():
            sizes[sponsor] += 1
        leaders = ["m0", "m1", "m2", *sorted(members, key=lambda r: -sizes[r])[:3]]
        checked = 0
        for leader in dict.fromkeys(leaders):
            for month in MONTHS:
                got = models.team_stats("acme", leader, month)
                want = expected(members, orders, leader, month)
                assert {"own": got.own_sales.get("CNY", 0), "gmv": got.team_gmv.get("CNY", 0),
                        "new": got.new_members, "at_start": got.members_at_start,
                        "active": got.active_members, "retention": got.retention_bps} == want, \
                    (leader, month)
                checked += 1
        assert checked >= 60
        # Not a tree where everyone joined today: the figures moved month by month.
        assert len({models.team_stats("acme", "m0", m).members_at_start for m in MONTHS}) > 6
    finally:
        models.close()
        runner.stop()
        app.close()
