"""The team tree and the team leaders' monthly numbers, built from the event log.

Tree: each reseller's sponsor, depth, direct downline count and team size (everyone below).
Every sponsor link and every team size is also kept with the time it began, so the tree can
be read as it stood at a past moment.

Numbers, per reseller and calendar month (platform time zone), as DOMAIN.md "Team numbers"
defines them: own sales and team GMV are kept as changes (paid, and refunded in the month
the refund is recorded), each with its business time and log position; an order counts for
the team its seller belonged to when it was paid, and a refund reverses it from that same
team. Targets and paid orders are kept with their times and positions too, so that new
members, members at the start, active members and progress are computed when read
(team_queries.py), from the tree and the sales as they stood at the moment or log position
asked for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from ledger.projections.clock import END_OF_TIME, Calendar, from_micros, micros
from ledger.projections.db import Cursor, append_rows, upsert_rows
from ledger.projections.memory import Memory
from ledger.projections.team_counts import ACTIVE, ENROLLED, JOINED, TEAM_SIZE, CountWriter

from ledger.domain.team import MAX_TREE_DEPTH

OWN_SALES = "own_sales"
TEAM_GMV = "team_gmv"


def sales_bucket(month: str, currency: str) -> str:
    """Own sales and team GMV are counted per month and currency."""
    return f"{month} {currency}"


DAY = 86_400_000_000  # microseconds


@dataclass
class OrderRow:
    platform: str
    order_id: str
    storefront: str
    seller_id: str
    currency: str
    ancestors: list[str] = field(default_factory=list)  # the seller's upline when paid
    freeze_days: int = 0
    due_at: int | None = None
    open_cases: int = 0
    settled: int = 0


@dataclass
class Node:
    reseller_id: str
    sponsor_id: str
    depth: int
    direct_count: int
    team_size: int
    rank: str
    enrolled_at: int


def sponsor_as_of(cur: Cursor, platform: str, reseller_id: str, at: int) -> str | None:
    """The sponsor as it stood at ``at`` ('' at the top of the tree): the last link made by
    then, in log order. None when the reseller had not enrolled by then."""
    cur.execute(
        "SELECT sponsor_id FROM proj_links WHERE platform = %s AND reseller_id = %s AND at <= %s"
        " ORDER BY position DESC LIMIT 1", (platform, reseller_id, at))
    row = cur.fetchone()
    return row[0] if row else None


def chain_above(sponsor: str, sponsor_of: Callable[[str], str | None], below: str
                ) -> list[str]:
    """``sponsor`` (the sponsor of ``below``; '' for none), its sponsor, … up to the top of
    the tree, each found with ``sponsor_of``."""
    out: list[str] = []
    for _ in range(MAX_TREE_DEPTH):
        if not sponsor:
            return out
        out.append(sponsor)
        sponsor = sponsor_of(sponsor) or ""
    raise AssertionError(f"the tree above {below} is deeper than {MAX_TREE_DEPTH}")


class TeamWriter:
    """Applies one batch of team events. What is read is remembered (``Memory``), and what is
    written is buffered, then written with a few statements at the end (``flush``); a move,
    which asks the database for a subtree, first writes out the tree as it stands."""

    def __init__(self, cur: Cursor, calendar: Calendar, memory: Memory | None = None) -> None:
        self.cur = cur
        self.calendar = calendar
        memory = memory or Memory()
        self._nodes = memory.nodes
        self._stats: dict[tuple[str, str, str, str, str], int] = defaultdict(int)
        self._first_paid: dict[tuple[str, str, str], int] = {}
        self._targets: list[tuple[str, str, str, str, int, int, int]] = []
        self._orders = memory.orders
        self._dirty_orders: set[str] = set()
        self._dirty_nodes: dict[tuple[str, str], Node] = {}
        self._links: list[tuple[str, str, str, int, int]] = []
        # New spans (ancestor, member, distance, since, position) not written yet: a member
        # enrolled in this batch, under every ancestor it has; or a subtree moved.
        self._spans: list[tuple[str, str, str, int, int, int]] = []
        self.counts = CountWriter()
        self._starts = memory.starts  # (platform, member, month) -> first paid at

    # --- the tree --------------------------------------------------------------------------

    def node(self, platform: str, reseller_id: str) -> Node | None:
        key = (platform, reseller_id)
        if key not in self._nodes:
            self.cur.execute(
                "SELECT reseller_id, sponsor_id, depth, direct_count, team_size, rank, "
                "enrolled_at FROM proj_resellers WHERE platform = %s AND reseller_id = %s",
                key,
            )
            row = self.cur.fetchone()
            self._nodes[key] = Node(*row) if row else None
        return self._nodes[key]

    def _save(self, platform: str, n: Node) -> None:
        self._nodes[(platform, n.reseller_id)] = n
        self._dirty_nodes[(platform, n.reseller_id)] = n

    def _write_tree(self) -> None:
        if self._dirty_nodes:
            upsert_rows(
                self.cur, "proj_resellers", ("platform", "reseller_id", "sponsor_id", "depth",
                                             "direct_count", "team_size", "rank", "enrolled_at"),
                ("platform", "reseller_id"),
                "sponsor_id = excluded.sponsor_id, depth = excluded.depth, "
                "direct_count = excluded.direct_count, team_size = excluded.team_size, "
                "rank = excluded.rank",
                [(platform, n.reseller_id, n.sponsor_id, n.depth, n.direct_count, n.team_size,
                  n.rank, n.enrolled_at) for (platform, _), n in self._dirty_nodes.items()])
            self._dirty_nodes.clear()
        append_rows(self.cur, "proj_team_spans",
                    ("platform", "ancestor", "member", "distance", "from_at", "from_pos",
                     "to_at", "to_pos"),
                    [(*span, END_OF_TIME, END_OF_TIME) for span in self._spans])
        self._spans.clear()
        append_rows(self.cur, "proj_links",
                    ("platform", "reseller_id", "sponsor_id", "at", "position"), self._links)
        self._links.clear()

    def ancestors(self, platform: str, reseller_id: str) -> list[str]:
        """The sponsor, the sponsor's sponsor, … up to the top of the tree."""

        def sponsor_of(rid: str) -> str | None:
            node = self.node(platform, rid)
            return node.sponsor_id if node else None

        return chain_above(sponsor_of(reseller_id) or "", sponsor_of, reseller_id)

    def _resize(self, platform: str, ids: list[str], delta: int) -> None:
        for rid in ids:
            n = self.node(platform, rid)
            assert n is not None, rid
            n.team_size += delta
            self._save(platform, n)

    def _membership(self, platform: str, leaders: list[str], size: int,
                    joined: dict[str, int], at: int, position: int, sign: int) -> None:
        """``size`` members (``joined``: how many of them joined in each month) come into
        (sign +1) or leave (-1) the teams of ``leaders`` at ``at``."""
        for leader in leaders:
            self.counts.add(platform, leader, TEAM_SIZE, "", at, position, sign * size)
            for month, n in joined.items():
                self.counts.add(platform, leader, JOINED, month, at, position, sign * n)

    def enrolled(self, platform: str, reseller_id: str, sponsor_id: str, at_dt: datetime,
                 position: int) -> None:
        at = micros(at_dt)
        sponsor = self.node(platform, sponsor_id) if sponsor_id else None
        self._save(platform, Node(reseller_id, sponsor_id, sponsor.depth + 1 if sponsor else 0,
                                  0, 0, "", at))
        self._link(platform, reseller_id, sponsor_id, at, position)
        if sponsor is not None:
            sponsor.direct_count += 1
            self._save(platform, sponsor)
        upline = self.ancestors(platform, reseller_id)
        self._resize(platform, upline, +1)
        for distance, leader in enumerate(upline, start=1):
            self._spans.append((platform, leader, reseller_id, distance, at, position))
            self.counts.add(platform, leader, ENROLLED, "", at, position, 1)

    def moved(self, platform: str, reseller_id: str, to_sponsor: str, at_dt: datetime,
              position: int) -> None:
        at = micros(at_dt)
        node = self.node(platform, reseller_id)
        assert node is not None
        below = self.descendants(platform, reseller_id)  # (member, distance); tree written
        moving = [(reseller_id, 0), *below]
        size = len(moving)
        joined = self._joined_months(platform, [m for m, _ in moving])
        old_upline = self.ancestors(platform, reseller_id)
        if node.sponsor_id:
            old = self.node(platform, node.sponsor_id)
            assert old is not None
            old.direct_count -= 1
            self._save(platform, old)
        self._resize(platform, old_upline, -size)
        self._membership(platform, old_upline, size, joined, at, position, -1)
        self._close_spans(platform, old_upline, [m for m, _ in moving], at, position)
        new_sponsor = self.node(platform, to_sponsor) if to_sponsor else None
        new_depth = new_sponsor.depth + 1 if new_sponsor else 0
        shift = new_depth - node.depth
        node.sponsor_id = to_sponsor
        node.depth = new_depth
        self._save(platform, node)
        if new_sponsor is not None:
            new_sponsor.direct_count += 1
            self._save(platform, new_sponsor)
        new_upline = self.ancestors(platform, reseller_id)
        self._resize(platform, new_upline, +size)
        self._membership(platform, new_upline, size, joined, at, position, +1)
        self._spans += [(platform, leader, member, distance + below_distance, at, position)
                        for distance, leader in enumerate(new_upline, start=1)
                        for member, below_distance in moving]
        self._link(platform, reseller_id, to_sponsor, at, position)
        if shift:
            for rid, _ in below:
                n = self.node(platform, rid)
                assert n is not None
                n.depth += shift
                self._save(platform, n)

    def rank_set(self, platform: str, reseller_id: str, rank: str) -> None:
        node = self.node(platform, reseller_id)
        assert node is not None
        node.rank = rank
        self._save(platform, node)

    def target_set(self, platform: str, reseller_id: str, month: str, currency: str,
                   amount: int, at_dt: datetime, position: int) -> None:
        """Every target is kept: the one in force at a moment is the last set by then."""
        self._targets.append((platform, reseller_id, month, currency, amount, micros(at_dt),
                              position))

    def descendants(self, platform: str, reseller_id: str) -> list[tuple[str, int]]:
        """Everyone below the reseller now, with how many levels below: its open spans
        (the tree is written first)."""
        self._write_tree()
        self.cur.execute(
            "SELECT member, distance FROM proj_team_spans WHERE platform = %s AND "
            "ancestor = %s AND to_pos = %s", (platform, reseller_id, END_OF_TIME))
        return [(row[0], int(row[1])) for row in self.cur.fetchall()]

    def _joined_months(self, platform: str, members: list[str]) -> dict[str, int]:
        """How many of ``members`` joined in each month."""
        joined: dict[str, int] = defaultdict(int)
        for member in members:
            n = self.node(platform, member)
            assert n is not None, member
            joined[self.calendar.month(from_micros(n.enrolled_at))] += 1
        return joined

    def _close_spans(self, platform: str, leaders: list[str], members: list[str], at: int,
                     position: int) -> None:
        """The spans between ``leaders`` and ``members`` end at ``at``: written at once (the
        tree was written just before, and moves are rare)."""
        if not leaders:
            return
        leader_marks = ", ".join(["%s"] * len(leaders))
        for start in range(0, len(members), 500):
            chunk = members[start:start + 500]
            member_marks = ", ".join(["%s"] * len(chunk))
            self.cur.execute(
                "UPDATE proj_team_spans SET to_at = %s, to_pos = %s WHERE platform = %s AND "
                f"to_pos = %s AND ancestor IN ({leader_marks}) AND member IN ({member_marks})",
                (at, position, platform, END_OF_TIME, *leaders, *chunk))

    def ancestors_at(self, platform: str, member: str, at: int) -> list[str]:
        """Everyone above ``member`` at business time ``at``, nearest first: its spans then
        (with this batch's new ones), one query whatever the depth."""
        self.cur.execute(
            "SELECT ancestor, distance FROM proj_team_spans WHERE platform = %s AND "
            "member = %s AND from_at <= %s AND to_at > %s", (platform, member, at, at))
        found = [(int(distance), ancestor) for ancestor, distance in self.cur.fetchall()]
        found += [(distance, leader) for p, leader, m, distance, since, _ in self._spans
                  if p == platform and m == member and since <= at]
        return [ancestor for _, ancestor in sorted(found)]

    def _link(self, platform: str, reseller_id: str, sponsor_id: str, at: int,
              position: int) -> None:
        self._links.append((platform, reseller_id, sponsor_id, at, position))

    # --- orders ----------------------------------------------------------------------------

    def placed(self, order_uid: str, platform: str, order_id: str, storefront: str,
               seller_id: str, currency: str) -> None:
        self._orders[order_uid] = OrderRow(platform, order_id, storefront, seller_id, currency)
        self._dirty_orders.add(order_uid)

    def order(self, order_uid: str) -> OrderRow:
        """The order as settlement and team numbers need it (read once per batch)."""
        if order_uid not in self._orders:
            self.cur.execute(
                "SELECT platform, order_id, storefront, seller_id, currency, ancestors, "
                "freeze_days, due_at, open_cases, settled FROM proj_orders WHERE order_uid = %s",
                (order_uid,))
            row = self.cur.fetchone()
            assert row is not None, f"order {order_uid} was never placed"
            self._orders[order_uid] = OrderRow(*row[:5], orjson.loads(row[5]), *row[6:])
        return self._orders[order_uid]

    def order_life(self, order_uid: str, **changes: int) -> None:
        """Keeps what settlement needs to find due orders: when the freeze window ends, how
        many after-sales cases are open, whether the order is settled."""
        row = self.order(order_uid)
        for column, value in changes.items():
            if column == "open_cases":
                row.open_cases += value
            else:
                assert column in ("freeze_days", "settled"), column
                setattr(row, column, value)
        self._dirty_orders.add(order_uid)

    def completed(self, order_uid: str, completed_at: datetime) -> None:
        row = self.order(order_uid)
        row.due_at = micros(completed_at) + row.freeze_days * DAY
        self._dirty_orders.add(order_uid)

    def paid(self, order_uid: str, currency: str, total: int, at_dt: datetime,
             position: int, backdated: bool = False) -> None:
        """The sale counts for the seller's teams as the tree stands in log order, or, for a
        backdated payment (a backfill), as it stood when paid, as its split did."""
        row = self.order(order_uid)
        if not row.seller_id:
            return
        at = micros(at_dt)
        if not backdated:
            row.ancestors = self.ancestors(row.platform, row.seller_id)
        else:
            seller = self.node(row.platform, row.seller_id)
            row.ancestors = (self.ancestors_at(row.platform, row.seller_id, at)
                             if seller is not None and seller.enrolled_at <= at
                             else self.ancestors_then(row.platform, row.seller_id, at))
        self._dirty_orders.add(order_uid)
        month = self.calendar.month(at_dt)
        self._sale(row.platform, row.seller_id, row.ancestors, month, currency, total, at,
                   position)
        self._activate(row.platform, row.seller_id, month, at, position)

    def refunded(self, order_uid: str, currency: str, amount: int, at_dt: datetime,
                 position: int) -> None:
        """A refund lands in the month it is recorded, like every correction, and on the
        teams its order counted for."""
        row = self.order(order_uid)
        if row.seller_id:
            month = self.calendar.month(at_dt)
            self._sale(row.platform, row.seller_id, row.ancestors, month, currency, -amount,
                       micros(at_dt), position)

    def _activate(self, platform: str, seller: str, month: str, at: int, position: int
                  ) -> None:
        """A member's first payment in a month makes them active for every team they were in
        when the month began. A payment backfilled with an earlier time than the first one
        recorded moves the activation back to it."""
        key = (platform, seller, month)
        if key not in self._starts:
            self.cur.execute("SELECT at FROM proj_active_first WHERE platform = %s AND "
                             "member = %s AND month = %s", key)
            row = self.cur.fetchone()
            self._starts[key] = int(row[0]) if row else None
        first = self._starts[key]
        if first is not None and first <= at:
            return
        start = micros(self.calendar.month_start(month))
        for leader in self.ancestors_at(platform, seller, start - 1):
            if first is not None:
                self.counts.add(platform, leader, ACTIVE, month, first, position, -1)
            self.counts.add(platform, leader, ACTIVE, month, at, position, +1)
        self._starts[key] = at
        self._first_paid[key] = at

    def _sale(self, platform: str, seller: str, upline: list[str], month: str, currency: str,
              amount: int, at: int, position: int) -> None:
        self._count(platform, seller, month, OWN_SALES, currency, amount, at, position)
        for leader in (seller, *upline):
            self._count(platform, leader, month, TEAM_GMV, currency, amount, at, position)

    def sponsor_at(self, platform: str, reseller_id: str, at: int) -> str | None:
        """``sponsor_as_of``, looking first at this batch's links, which come after the
        table's and are not written yet."""
        latest: tuple[int, str] | None = None
        for p, rid, sponsor, when, position in self._links:
            if p == platform and rid == reseller_id and when <= at and (
                    latest is None or position > latest[0]):
                latest = (position, sponsor)
        if latest is not None:
            return latest[1]
        return sponsor_as_of(self.cur, platform, reseller_id, at)

    def first_sponsor(self, platform: str, reseller_id: str) -> str | None:
        """The sponsor the reseller enrolled under; None if never enrolled."""
        self.cur.execute("SELECT sponsor_id FROM proj_links WHERE platform = %s AND "
                         "reseller_id = %s ORDER BY position LIMIT 1", (platform, reseller_id))
        row = self.cur.fetchone()
        if row is not None:
            return str(row[0])
        return next((sponsor for p, rid, sponsor, _, _ in self._links
                     if p == platform and rid == reseller_id), None)

    def ancestors_then(self, platform: str, reseller_id: str, at: int) -> list[str]:
        """Everyone above the reseller as the tree stood at ``at``, each member taken as
        first enrolled where ``at`` is before their enrolment (as the split does). Only for
        a payment recorded before its seller's enrolment (logs from before backfills were
        checked): otherwise the spans at ``at`` say the same in one query
        (``ancestors_at``), since every sponsor joined before the member under them."""

        def sponsor_then(rid: str) -> str | None:
            sponsor = self.sponsor_at(platform, rid, at)
            return sponsor if sponsor is not None else self.first_sponsor(platform, rid)

        return chain_above(sponsor_then(reseller_id) or "", sponsor_then, reseller_id)

    def _count(self, platform: str, reseller_id: str, month: str, metric: str, currency: str,
               delta: int, at: int, position: int) -> None:
        self._stats[(platform, reseller_id, month, metric, currency)] += delta
        self.counts.add(platform, reseller_id, metric, sales_bucket(month, currency), at,
                        position, delta)

    def flush(self) -> None:
        self._write_tree()
        if self._dirty_orders:
            upsert_rows(
                self.cur, "proj_orders", ("order_uid", "platform", "order_id", "storefront",
                                          "seller_id", "currency", "ancestors", "freeze_days",
                                          "due_at", "open_cases", "settled"), ("order_uid",),
                "ancestors = excluded.ancestors, freeze_days = excluded.freeze_days, "
                "due_at = excluded.due_at, open_cases = excluded.open_cases, "
                "settled = excluded.settled",
                [(uid, r.platform, r.order_id, r.storefront, r.seller_id, r.currency,
                  orjson.dumps(r.ancestors).decode(), r.freeze_days, r.due_at, r.open_cases,
                  r.settled)
                 for uid in self._dirty_orders for r in (self._orders[uid],)])
            self._dirty_orders.clear()
        if self._stats:
            upsert_rows(
                self.cur, "proj_team_stats", ("platform", "reseller_id", "month", "metric",
                                              "currency", "value"),
                ("platform", "reseller_id", "month", "metric", "currency"),
                "value = proj_team_stats.value + excluded.value",
                [(*key, value) for key, value in self._stats.items()])
        upsert_rows(self.cur, "proj_active_first", ("platform", "member", "month", "at"),
                    ("platform", "member", "month"), "at = excluded.at",
                    [(*key, at) for key, at in self._first_paid.items()])
        self.counts.flush(self.cur)
        append_rows(self.cur, "proj_team_targets",
                    ("platform", "reseller_id", "month", "currency", "amount", "at", "position"),
                    self._targets)
        self._stats.clear()
        self._first_paid.clear()
        self._targets.clear()
