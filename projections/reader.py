"""Queries over the read models for the API: one connection per thread, read-only."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ledger.projections import balances as b
from ledger.projections import finance as f
from ledger.projections import reconciliation_queries as r
from ledger.projections import statements as s
from ledger.projections import tax as x
from ledger.projections import team_queries as t
from ledger.projections.clock import END_OF_TIME, Calendar
from ledger.projections.db import Cursor, Link, ProjectionDB, StoreUnavailable
from ledger.projections.runner import NAME
from ledger.projections.team_tree import Node

from ledger.domain.order import OrderKey
from ledger.domain.periods import DayStatement, StatementLine
from ledger.domain.quarters import QuarterLine

R = TypeVar("R")


class ReadModels:
    """Each thread reads through a link of its own (psycopg connections are not shared
    between threads).

    A read whose connection turns out to have been lost while it sat idle (a database
    restart, a failover, a terminated backend) is read again once on a new connection: the
    caller never hears of an outage that is already over. A read that fails on a new
    connection raises ``StoreUnavailable``, answered as retryable."""

    def __init__(self, database_url: str, calendar: Calendar | None = None) -> None:
        self.db = ProjectionDB(database_url)
        self.calendar = calendar or Calendar()
        self._local = threading.local()
        self._all: list[Link] = []
        self._lock = threading.Lock()

    def _link(self) -> Link:
        link = getattr(self._local, "link", None)
        if link is None:
            link = self._local.link = Link(self.db)
            with self._lock:
                self._all.append(link)
        return link

    def close(self) -> None:
        with self._lock:
            for link in self._all:
                link.discard()
            self._all.clear()

    def _query(self, query: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """``query(cursor, *args, **kwargs)`` in a read-only transaction."""
        link = self._link()
        fresh = not link.connected_now
        try:
            with link.transaction(write=False) as cur:
                return query(cur, *args, **kwargs)
        except StoreUnavailable:
            if fresh:
                raise
        with link.transaction(write=False) as cur:  # the idle connection had been lost
            return query(cur, *args, **kwargs)

    def ensure_tables(self) -> None:
        with self._link().connected() as conn:
            self.db.create(conn)

    def processed_position(self) -> int:
        return self._query(_position)

    def balances(self, platform: str, account: str, *, position: int = 0,
                 at: int = END_OF_TIME) -> list[b.Balance]:
        if position or at < END_OF_TIME:
            return self._query(b.balances_as_of, platform, account,
                               position=position or END_OF_TIME, at=at)
        return self._query(b.balances_of, platform, account)

    def page_of_balances(self, platform: str, **query: Any) -> list[b.Balance]:
        return self._query(b.page_of_balances, platform, **query)

    def totals_by_currency(self) -> dict[str, int]:
        return self._query(b.totals_by_currency)

    def member(self, platform: str, reseller_id: str) -> Node | None:
        return self._query(t.member, platform, reseller_id)

    def upline(self, platform: str, reseller_id: str, at: int = END_OF_TIME) -> list[str] | None:
        """None when the reseller had not enrolled by then."""
        return self._query(_upline, platform, reseller_id, at)

    def subtree(self, platform: str, reseller_id: str, **query: Any) -> list[tuple[str, str, int]]:
        return self._query(t.subtree, platform, reseller_id, **query)

    def team_stats(self, platform: str, reseller_id: str, month: str,
                   at: int = END_OF_TIME, position: int = END_OF_TIME) -> t.TeamStats:
        return self._query(t.team_stats, self.calendar, platform, reseller_id, month, at,
                           position)

    def due_orders(self, platform: str, now: int, limit: int) -> list[OrderKey]:
        return self._query(f.due_orders, platform, now, limit)

    def platforms_with_due_orders(self, now: int) -> list[str]:
        return self._query(f.platforms_with_due_orders, now)

    def payable(self, platform: str, offset: int, limit: int,
                after: tuple[int, str] | None = None) -> list[f.PayoutRow]:
        return self._query(f.payable, platform, offset, limit, after)

    def payouts_in_flight(self) -> list[tuple[str, str, int]]:
        return self._query(f.payouts_in_flight)

    def day_statement(self, platform: str, day: str, timezone: str) -> DayStatement:
        """The day's statement without its lines, as a close records it (its lines are
        ``statement_lines``' pages), with the day's reconciliation with the payment rail."""
        self._check_zone(timezone)
        return self._query(_day_statement, platform, day, timezone, f.day_bounds(day, timezone))

    def statement_lines(self, platform: str, day: str, limit: int,
                        after: s.LineKey | None = None) -> list[StatementLine]:
        return self._query(s.page_of_lines, platform, day, limit, after)

    def is_closed(self, platform: str, day: str) -> bool:
        """Whether the read models hold the day's close (and so all it sums)."""
        return self._query(s.is_closed, platform, day)

    def account_movements(self, platform: str, account: str, from_day: str, to_day: str,
                          timezone: str, limit: int,
                          after: tuple[int, int, str, str] | None = None) -> list[f.Movement]:
        return self._query(f.account_movements, platform, account, from_day, to_day, timezone,
                           limit, after)

    def account_totals(self, platform: str, account: str, from_day: str, to_day: str,
                       timezone: str) -> list[StatementLine]:
        self._check_zone(timezone)
        return self._query(f.account_totals, platform, account, from_day, to_day)

    def breaks(self, platform: str, day: str, bill_kind: str, status: str, limit: int,
               after: str | None = None) -> list[r.BreakRow]:
        return self._query(r.breaks, platform, day, bill_kind, status, limit, after)

    def find_break(self, platform: str, day: str, break_id: str) -> r.BreakRow | None:
        return self._query(r.find_break, platform, day, break_id)

    def day_reconciliation(self, platform: str, day: str) -> r.DayReconciliation:
        return self._query(r.day_reconciliation, platform, day)

    def _check_zone(self, timezone: str) -> None:
        """Days are summed in the calendar's time zone: a statement in another would not
        be the sum of those days."""
        if timezone != self.calendar.timezone:
            raise ValueError(f"the read models' days are in {self.calendar.timezone}, "
                             f"not {timezone}")

    def monthly_withholding(self, platform: str, start: int, end: int) -> list[x.MonthLine]:
        return self._query(x.monthly, platform, start, end)

    def quarter_lines(self, platform: str, start: int, end: int, *, carried_after: int,
                      up_to: int) -> list[QuarterLine]:
        return self._query(x.quarter_lines, platform, start, end, carried_after=carried_after,
                           up_to=up_to)


def _day_statement(cur: Cursor, platform: str, day: str, timezone: str,
                   bounds: tuple[int, int]) -> DayStatement:
    summary = s.day_summary(cur, platform, day, timezone, bounds)
    return dataclasses.replace(summary,
                               reconciliation=r.day_reconciliation(cur, platform, day).state)


def _position(cur: Cursor) -> int:
    cur.execute("SELECT position FROM proj_meta WHERE name = %s", (NAME,))
    row = cur.fetchone()
    return int(row[0]) if row else 0


def _upline(cur: Cursor, platform: str, reseller_id: str, at: int) -> list[str] | None:
    if t.sponsor_as_of(cur, platform, reseller_id, at) is None:
        return None
    return t.upline(cur, platform, reseller_id, at)
