"""Reading the team tree and the monthly numbers, now or as they stood at a past moment."""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.domain.team import MAX_TREE_DEPTH
from projections.clock import END_OF_TIME, Calendar, micros
from projections.db import Cursor
from projections.team import OWN_SALES, Node, chain_above, sponsor_as_of

# The sponsor links in force at a moment: each reseller's latest link at or before it.
LINKS_AS_OF = (
    "links AS (SELECT l.reseller_id AS id, l.sponsor_id AS sponsor FROM proj_links l "
    "WHERE l.platform = %s AND l.position = (SELECT MAX(l2.position) FROM proj_links l2 "
    "WHERE l2.platform = l.platform AND l2.reseller_id = l.reseller_id AND l2.at <= %s))"
)


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
    """(reseller, sponsor, level below ``reseller_id``), level by level, then by id; those
    after ``after`` (level, id) when given."""
    since, params = "", []
    if after is not None:
        since = " WHERE lvl > %s OR (lvl = %s AND id > %s)"
        params = [after[0], after[0], after[1]]
    cur.execute(
        f"WITH RECURSIVE {LINKS_AS_OF}, down(id, sponsor, lvl) AS ("
        "SELECT id, sponsor, 1 FROM links WHERE sponsor = %s UNION ALL "
        "SELECT links.id, links.sponsor, down.lvl + 1 FROM links JOIN down "
        "ON links.sponsor = down.id WHERE down.lvl < %s) "
        f"SELECT id, sponsor, lvl FROM down{since} ORDER BY lvl, id LIMIT %s OFFSET %s",
        (platform, at, reseller_id, max_depth, *params, limit, offset))
    return [(row[0], row[1], int(row[2])) for row in cur.fetchall()]


def team_size_as_of(cur: Cursor, platform: str, reseller_id: str, at: int) -> int:
    cur.execute(
        "SELECT team_size FROM proj_team_sizes WHERE platform = %s AND reseller_id = %s "
        "AND at <= %s ORDER BY at DESC, position DESC LIMIT 1", (platform, reseller_id, at))
    row = cur.fetchone()
    return int(row[0]) if row else 0


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


# R's team (everyone below R, any depth) as the tree stood at a time, as recorded by a log
# position: each member's latest link made at or before the time, among those recorded by
# the position.
TEAM_AS_OF = (
    "WITH RECURSIVE links AS (SELECT l.reseller_id AS id, l.sponsor_id AS sponsor "
    "FROM proj_links l WHERE l.platform = %s AND l.position = (SELECT MAX(l2.position) "
    "FROM proj_links l2 WHERE l2.platform = l.platform AND l2.reseller_id = l.reseller_id "
    "AND l2.at <= %s AND l2.position <= %s)), "
    "team(id, lvl) AS (SELECT id, 1 FROM links WHERE sponsor = %s UNION ALL "
    "SELECT links.id, team.lvl + 1 FROM links JOIN team ON links.sponsor = team.id "
    f"WHERE team.lvl < {MAX_TREE_DEPTH}) ")


def team_stats(
    cur: Cursor, calendar: Calendar, platform: str, reseller_id: str, month: str,
    at: int = END_OF_TIME, position: int = END_OF_TIME,
) -> TeamStats:
    """R's numbers for ``month`` as they stood at time ``at`` (business time: a backfilled
    order counts from when it was paid, a backdated member from when they joined) as
    recorded by log ``position``; now, when neither is given."""
    start = micros(calendar.month_start(month))
    end = micros(calendar.month_end(month))
    stats = TeamStats()
    if at >= END_OF_TIME and position >= END_OF_TIME:
        cur.execute("SELECT metric, currency, value FROM proj_team_stats WHERE platform = %s "
                    "AND reseller_id = %s AND month = %s", (platform, reseller_id, month))
    else:
        cur.execute("SELECT metric, currency, SUM(delta) FROM proj_team_stat_changes WHERE "
                    "platform = %s AND reseller_id = %s AND month = %s AND at <= %s AND "
                    "position <= %s GROUP BY metric, currency",
                    (platform, reseller_id, month, at, position))
    for metric, currency, value in cur.fetchall():
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
    cur.execute(
        TEAM_AS_OF + "SELECT COUNT(*) FROM team JOIN proj_resellers r ON r.platform = %s AND "
        "r.reseller_id = team.id WHERE r.enrolled_at >= %s AND r.enrolled_at < %s",
        (platform, at, position, reseller_id, platform, start, end))
    stats.new_members = int(cur.fetchone()[0])
    # Members at the start: R's team when the month began (who joined before it); active:
    # those of them with an own order paid in the month, by the moment read.
    cur.execute(
        TEAM_AS_OF + "SELECT COUNT(*), COUNT(p.seller_id) FROM team LEFT JOIN "
        "(SELECT DISTINCT seller_id FROM proj_paid_orders WHERE platform = %s AND month = %s "
        "AND at <= %s AND position <= %s) p ON p.seller_id = team.id",
        (platform, min(at, start - 1), position, reseller_id, platform, month, at, position))
    total, active = cur.fetchone()
    stats.members_at_start, stats.active_members = int(total), int(active)
    return stats
