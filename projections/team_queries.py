"""Reading the team tree and the monthly numbers, now or as they stood at a past moment."""

from __future__ import annotations

from dataclasses import dataclass, field

from projections.clock import END_OF_TIME, Calendar, micros
from projections.db import Cursor
from projections.team import (
    ACTIVE_MEMBERS,
    NEW_MEMBERS,
    OWN_SALES,
    TEAM_GMV,
    Node,
    chain_above,
    sponsor_as_of,
)

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
        return self.team_gmv.get(currency, 0) * 10_000 // target if target > 0 else 0

    @property
    def currencies(self) -> list[str]:
        return sorted({*self.own_sales, *self.team_gmv, *self.targets})


def team_stats(
    cur: Cursor, calendar: Calendar, platform: str, reseller_id: str, month: str,
    at: int = END_OF_TIME,
) -> TeamStats:
    if at >= END_OF_TIME:
        cur.execute("SELECT metric, currency, value FROM proj_team_stats WHERE platform = %s "
                    "AND reseller_id = %s AND month = %s", (platform, reseller_id, month))
    else:
        cur.execute("SELECT metric, currency, SUM(delta) FROM proj_team_stat_changes WHERE "
                    "platform = %s AND reseller_id = %s AND month = %s AND at <= %s "
                    "GROUP BY metric, currency", (platform, reseller_id, month, at))
    stats = TeamStats()
    for metric, currency, value in cur.fetchall():
        value = int(value)
        if metric == NEW_MEMBERS:
            stats.new_members = value
        elif metric == ACTIVE_MEMBERS:
            stats.active_members = value
        elif metric == OWN_SALES:
            stats.own_sales[currency] = value
        elif metric == TEAM_GMV:
            stats.team_gmv[currency] = value
    start = micros(calendar.month_start(month))
    stats.members_at_start = team_size_as_of(cur, platform, reseller_id, start - 1)
    cur.execute("SELECT currency, amount FROM proj_team_targets WHERE platform = %s AND "
                "reseller_id = %s AND month = %s", (platform, reseller_id, month))
    stats.targets = {currency: int(amount) for currency, amount in cur.fetchall()}
    return stats
