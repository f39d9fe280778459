"""The team leaders' monthly numbers, and the orders they are counted from, built from the
event log over the team tree (team_tree.py: each reseller's sponsor, depth, downline and
team size, kept with the times they began, so the tree can be read as it stood at a past
moment).

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from ledger.projections.clock import Calendar, micros
from ledger.projections.day_balances import execute_planned_now
from ledger.projections.db import Cursor, append_rows, upsert_rows
from ledger.projections.memory import Memory
from ledger.projections.team_counts import ACTIVE, CountWriter
from ledger.projections.team_tree import TreeWriter

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


class TeamWriter:
    """Applies one batch of team events: the tree's (``tree``) and the orders' and numbers'.
    What is read is remembered (``Memory``), and what is written is buffered, then written
    with a few statements at the end (``flush``)."""

    def __init__(self, cur: Cursor, calendar: Calendar, memory: Memory | None = None) -> None:
        self.cur = cur
        self.calendar = calendar
        memory = memory or Memory()
        self.counts = CountWriter()
        self.tree = TreeWriter(cur, calendar, memory, self.counts)
        self._stats: dict[tuple[str, str, str, str, str], int] = defaultdict(int)
        self._first_paid: dict[tuple[str, str, str], int] = {}
        self._targets: list[tuple[str, str, str, str, int, int, int]] = []
        self._orders = memory.orders
        self._dirty_orders: set[str] = set()
        self._starts = memory.starts  # (platform, member, month) -> first paid at

    def target_set(self, platform: str, reseller_id: str, month: str, currency: str,
                   amount: int, at_dt: datetime, position: int) -> None:
        """Every target is kept: the one in force at a moment is the last set by then."""
        self._targets.append((platform, reseller_id, month, currency, amount, micros(at_dt),
                              position))

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
            row.ancestors = self.tree.ancestors(row.platform, row.seller_id)
        else:
            seller = self.tree.node(row.platform, row.seller_id)
            row.ancestors = (self.tree.ancestors_at(row.platform, row.seller_id, at)
                             if seller is not None and seller.enrolled_at <= at
                             else self.tree.ancestors_then(row.platform, row.seller_id, at))
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

    def prefetch_starts(self, platform: str, keys: Iterable[tuple[str, str]]) -> None:
        """When each (member, month) of ``keys`` was first paid for, for those memory lacks:
        a query for the batch, not one per sale (``_activate``)."""
        missing = [k for k in dict.fromkeys(keys) if (platform, *k) not in self._starts]
        for start in range(0, len(missing), 400):
            chunk = missing[start:start + 400]
            execute_planned_now(  # see TreeWriter.prefetch_uplines
                self.cur,
                "SELECT member, month, at FROM proj_active_first WHERE platform = %s AND "
                f"(member, month) IN (VALUES {', '.join(['(%s, %s)'] * len(chunk))})",
                (platform, *(v for key in chunk for v in key)))
            found = {(member, month): int(at) for member, month, at in self.cur.fetchall()}
            for member, month in chunk:
                self._starts[(platform, member, month)] = found.get((member, month))

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
        for leader in self.tree.ancestors_at(platform, seller, start - 1):
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

    def _count(self, platform: str, reseller_id: str, month: str, metric: str, currency: str,
               delta: int, at: int, position: int) -> None:
        self._stats[(platform, reseller_id, month, metric, currency)] += delta
        self.counts.add(platform, reseller_id, metric, sales_bucket(month, currency), at,
                        position, delta)

    def flush(self) -> None:
        self.tree.write()
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
