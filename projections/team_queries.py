"""Reading the team tree and the monthly numbers, now or as they stood at a past moment."""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.projections.clock import END_OF_TIME, Calendar, micros
from ledger.projections.db import Cursor
from ledger.projections.team import OWN_SALES, sales_bucket
from ledger.projections.team_counts import ACTIVE, count, joined_in, team_size
from ledger.projections.team_tree import Node, chain_above, sponsor_as_of


def member(cur: Cursor, platform: str, reseller_id: str) -> Node | None:
    cur.execute(
        "SELECT reseller_id, sponsor_id, depth, direct_count, team_size, rank, enrolled_at "
        "FROM proj_resellers WHERE platform = %s AND reseller_id = %s", (platform, reseller_id))
    row = cur.fetchone()
    return Node(*row) if row else None


def upline(cur: Cursor, platform: str, reseller_id: str, at: int = END_OF_TIME) -> list[str]:
    return chain_above(sponsor_as_of(cur, platform, reseller_id, at) or "",
                       lambda rid: sponsor_as_of(cur, platform, rid, at), reseller_id)


def subtree(
    cur: Cursor, platform: str, reseller_id: str, *, max_depth: int, at: int, offset: int,
    limit: int, after: tuple[int, str] | None = None,
) -> list[tuple[str, str, int]]:
    """(member, its sponsor, levels below ``reseller_id``) as the tree stood at ``at``, level
    by level, then by id; those after ``after`` (level, id) when given.

    Read from the spans (an ancestor, a member and the distance between, with when that
    began and ended) through their index on (ancestor, distance, member): a page costs what
    it returns, whatever the team's size or depth, and a whole walk page by page is linear.
    Each member's sponsor is its span at distance 1, one index lookup."""
    at = min(at, END_OF_TIME - 1)  # an open span ends at END_OF_TIME
    since, params = "", []
    if after is not None:
        # A row comparison, which both databases take as where to start in the index: the
        # same condition spelt with OR made PostgreSQL read the walk from its beginning.
        since = " AND (s.distance, s.member) > (%s, %s)"
        params = [after[0], after[1]]
    cur.execute(
        "SELECT s.member, p.ancestor, s.distance FROM proj_team_spans s "
        "JOIN proj_team_spans p ON p.platform = s.platform AND p.member = s.member AND "
        "p.distance = 1 AND p.from_at <= %s AND p.to_at > %s "
        "WHERE s.platform = %s AND s.ancestor = %s AND s.distance <= %s AND s.from_at <= %s "
        f"AND s.to_at > %s{since} ORDER BY s.distance, s.member LIMIT %s OFFSET %s",
        (at, at, platform, reseller_id, max_depth, at, at, *params, limit, offset))
    return [(row[0], row[1], int(row[2])) for row in cur.fetchall()]


@dataclass
class TeamStats:
    """DOMAIN.md "Team numbers", for one reseller R and one month."""

    new_members: int = 0
    members_at_start: int = 0
    active_members: int = 0
    own_sales: dict[str, int] = field(default_factory=dict)
    team_gmv: dict[str, int] = field(default_factory=dict)
    targets: dict[str, int] = field(default_factory=dict)

    @property
    def retention_bps(self) -> int:
        if not self.members_at_start:
            return 0
        return self.active_members * 10_000 // self.members_at_start

    def progress_bps(self, currency: str) -> int:
        target = self.targets.get(currency, 0)
        gmv = self.team_gmv.get(currency, 0)
        return gmv * 10_000 // target if target > 0 and gmv > 0 else 0

    @property
    def currencies(self) -> list[str]:
        return sorted({*self.own_sales, *self.team_gmv, *self.targets})


def team_stats(
    cur: Cursor, calendar: Calendar, platform: str, reseller_id: str, month: str,
    at: int = END_OF_TIME, position: int = END_OF_TIME,
) -> TeamStats:
    """R's numbers for ``month`` as they stood at time ``at`` (business time: a backfilled
    order counts from when it was paid, a backdated member from when they joined) as
    recorded by log ``position``; now, when neither is given.

    Every figure is a count kept as it changed (team_counts.py): a read costs a row per day
    the count changed, or, as of a log position, a row per change, never a walk of the team."""
    start = micros(calendar.month_start(month))
    stats = TeamStats()
    cur.execute("SELECT metric, currency, value FROM proj_team_stats WHERE platform = %s "
                "AND reseller_id = %s AND month = %s", (platform, reseller_id, month))
    for metric, currency, value in cur.fetchall():
        if at < END_OF_TIME or position < END_OF_TIME:
            value = count(cur, platform, reseller_id, metric, sales_bucket(month, currency),
                          at, position)
        if value:
            (stats.own_sales if metric == OWN_SALES else stats.team_gmv)[currency] = int(value)
    # Targets: the last set for the month and currency, at or before the moment read.
    cur.execute(
        "SELECT currency, amount FROM proj_team_targets t WHERE platform = %s AND "
        "reseller_id = %s AND month = %s AND at <= %s AND position = (SELECT MAX(position) "
        "FROM proj_team_targets t2 WHERE t2.platform = t.platform AND t2.reseller_id = "
        "t.reseller_id AND t2.month = t.month AND t2.currency = t.currency AND t2.at <= %s "
        "AND t2.position <= %s)", (platform, reseller_id, month, at, at, position))
    stats.targets = {currency: int(amount) for currency, amount in cur.fetchall()}
    # New members: joined in the month, and in R's team at the moment read.
    stats.new_members = joined_in(cur, platform, reseller_id, month, start,
                                  micros(calendar.month_end(month)), at, position)
    # Members at the start: R's team when the month began (who joined before its first
    # instant); active: those of them with an own order paid in the month by the moment read.
    stats.members_at_start = team_size(cur, platform, reseller_id, min(at, start - 1),
                                       position)
    stats.active_members = count(cur, platform, reseller_id, ACTIVE, month, at, position)
    return stats
