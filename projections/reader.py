"""Queries over the read models for the API: one connection per thread, read-only."""

from __future__ import annotations

import threading
from typing import Any

from ledger.domain.periods import DayStatement, StatementLine
from projections import balances as b
from projections import finance as f
from projections import team_queries as t
from projections.clock import END_OF_TIME, Calendar
from projections.db import ProjectionDB
from projections.runner import NAME
from projections.team import Node


class ReadModels:
    def __init__(self, database_url: str, calendar: Calendar | None = None) -> None:
        self.db = ProjectionDB(database_url)
        self.calendar = calendar or Calendar()
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.db.connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()

    def _read(self) -> Any:
        return self.db.transaction(self._conn(), write=False)

    def ensure_tables(self) -> None:
        self.db.create(self._conn())

    def processed_position(self) -> int:
        with self._read() as cur:
            cur.execute("SELECT position FROM proj_meta WHERE name = %s", (NAME,))
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def balances(self, platform: str, account: str, *, position: int = 0,
                 at: int = END_OF_TIME) -> list[b.Balance]:
        with self._read() as cur:
            if position or at < END_OF_TIME:
                return b.balances_as_of(cur, platform, account, position=position or END_OF_TIME,
                                        at=at)
            return b.balances_of(cur, platform, account)

    def page_of_balances(self, platform: str, **query: Any) -> list[b.Balance]:
        with self._read() as cur:
            return b.page_of_balances(cur, platform, **query)

    def totals_by_currency(self) -> dict[str, int]:
        with self._read() as cur:
            return b.totals_by_currency(cur)

    def member(self, platform: str, reseller_id: str) -> Node | None:
        with self._read() as cur:
            return t.member(cur, platform, reseller_id)

    def upline(self, platform: str, reseller_id: str, at: int = END_OF_TIME) -> list[str] | None:
        """None when the reseller had not enrolled by then."""
        with self._read() as cur:
            if t.sponsor_as_of(cur, platform, reseller_id, at) is None:
                return None
            return t.upline(cur, platform, reseller_id, at)

    def subtree(self, platform: str, reseller_id: str, **query: Any) -> list[tuple[str, str, int]]:
        with self._read() as cur:
            return t.subtree(cur, platform, reseller_id, **query)

    def team_stats(self, platform: str, reseller_id: str, month: str,
                   at: int = END_OF_TIME) -> t.TeamStats:
        with self._read() as cur:
            return t.team_stats(cur, self.calendar, platform, reseller_id, month, at)

    def due_orders(self, platform: str, now: int, limit: int) -> list[str]:
        with self._read() as cur:
            return f.due_orders(cur, platform, now, limit)

    def platforms_with_due_orders(self, now: int) -> list[str]:
        with self._read() as cur:
            return f.platforms_with_due_orders(cur, now)

    def payable(self, platform: str, offset: int, limit: int,
                after: tuple[int, str] | None = None) -> list[f.PayoutRow]:
        with self._read() as cur:
            return f.payable(cur, platform, offset, limit, after)

    def day_statement(self, platform: str, day: str, timezone: str) -> DayStatement:
        with self._read() as cur:
            return f.day_statement(cur, platform, day, timezone)

    def account_statement(self, platform: str, account: str, from_day: str, to_day: str,
                          timezone: str) -> tuple[list[f.Movement], list[StatementLine]]:
        with self._read() as cur:
            return f.account_statement(cur, platform, account, from_day, to_day, timezone)
