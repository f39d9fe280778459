"""Finance's read models: due orders, payable payouts, account statements (day statements
are projections/statements.py's).

A statement line gives, for one account, currency and bucket, the opening balance, the
movements by kind, and the closing balance.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ledger.projections.clock import micros
from ledger.projections.db import Cursor
from ledger.projections.statements import LineKey, account_openings, line

from ledger.domain.order import OrderKey
from ledger.domain.periods import StatementLine


def day_bounds(day: str, timezone: str) -> tuple[int, int]:
    """[start, end) of a calendar day in the platform's time zone, in UTC microseconds."""
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), ZoneInfo(timezone))
    return micros(start), micros(start + timedelta(days=1))


def due_orders(cur: Cursor, platform: str, now: int, limit: int) -> list[OrderKey]:
    """The orders settlement should look at, each named with its storefront (two
    storefronts may number orders alike)."""
    cur.execute(
        "SELECT storefront, order_id FROM proj_orders WHERE platform = %s AND settled = 0 AND "
        "due_at IS NOT NULL AND due_at <= %s AND open_cases = 0 ORDER BY due_at LIMIT %s",
        (platform, now, limit))
    return [OrderKey(storefront, order_id) for storefront, order_id in cur.fetchall()]


def platforms_with_due_orders(cur: Cursor, now: int) -> list[str]:
    cur.execute("SELECT DISTINCT platform FROM proj_orders WHERE settled = 0 AND "
                "due_at IS NOT NULL AND due_at <= %s AND open_cases = 0", (now,))
    return sorted(row[0] for row in cur.fetchall())


@dataclass(frozen=True)
class PayoutRow:
    payout_id: str
    account: str
    currency: str
    amount: int
    status: str
    requested_by: str
    requested_at: int
    updated_at: int
    reference: str
    reason: str
    tax: int = 0


def payable(cur: Cursor, platform: str, offset: int, limit: int,
            after: tuple[int, str] | None = None) -> list[PayoutRow]:
    """Payouts waiting for finance, oldest first; those after ``after`` (request time, id)."""
    since, params = "", [platform]
    if after is not None:
        since = " AND (requested_at > %s OR (requested_at = %s AND payout_id > %s))"
        params += [after[0], after[0], after[1]]
    cur.execute(
        "SELECT payout_id, account, currency, amount, status, requested_by, requested_at, "
        "updated_at, reference, reason, tax FROM proj_payouts WHERE platform = %s AND "
        f"status IN ('requested', 'approved'){since} ORDER BY requested_at, payout_id "
        "LIMIT %s OFFSET %s", (*params, limit, offset))
    return [PayoutRow(*row) for row in cur.fetchall()]


def payouts_in_flight(cur: Cursor) -> list[tuple[str, str, int]]:
    """(platform, state, how many) of the payouts requested or approved, not yet settled."""
    cur.execute("SELECT platform, status, count(*) FROM proj_payouts WHERE status IN "
                "('requested', 'approved') GROUP BY platform, status ORDER BY platform, status")
    return [(str(p), str(s), int(n)) for p, s, n in cur.fetchall()]


@dataclass(frozen=True)
class Movement:
    position: int
    at: int
    currency: str
    bucket: str
    amount: int
    kind: str
    source: str

    @property
    def page_key(self) -> tuple[int, int, str, str]:
        """Where a page of an account's movements ends: time, log position, currency and
        bucket (one event moves one bucket of an account in a currency once)."""
        return self.at, self.position, self.currency, self.bucket


def account_movements(cur: Cursor, platform: str, account: str, from_day: str, to_day: str,
                      timezone: str, limit: int,
                      after: tuple[int, int, str, str] | None = None) -> list[Movement]:
    """A page of the account's movements booked from ``from_day`` to ``to_day`` (both
    included), in time order (log order within a moment), after ``after`` when given."""
    start, _ = day_bounds(from_day, timezone)
    _, end = day_bounds(to_day, timezone)
    since, params = "", [platform, account, start, end]
    if after is not None:
        since = " AND (at, position, currency, bucket) > (%s, %s, %s, %s)"
        params += after
    cur.execute(
        "SELECT position, at, currency, bucket, amount, kind, ref FROM proj_movements WHERE "
        f"platform = %s AND account = %s AND at >= %s AND at < %s{since} "
        "ORDER BY at, position, currency, bucket LIMIT %s", (*params, limit))
    return [Movement(int(p), int(a), c, b, int(v), k, r) for p, a, c, b, v, k, r in
            cur.fetchall()]


def account_totals(cur: Cursor, platform: str, account: str, from_day: str, to_day: str
                   ) -> list[StatementLine]:
    """Per currency and bucket: the balance before ``from_day``, the movements by kind to
    ``to_day`` (both included), the balance after. From the day read model: what it reads
    grows with the days in the range, not with the account's history."""
    opening = account_openings(cur, platform, account, from_day)
    cur.execute(
        "SELECT m.currency, m.bucket, m.kind, SUM(m.amount) FROM proj_line_keys k JOIN "
        "proj_day_moves m ON m.platform = k.platform AND m.account = k.account AND "
        "m.currency = k.currency AND m.bucket = k.bucket AND m.day >= %s AND m.day <= %s "
        "WHERE k.platform = %s AND k.account = %s GROUP BY m.currency, m.bucket, m.kind",
        (from_day, to_day, platform, account))
    moved: dict[LineKey, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for currency, bucket, kind, amount in cur.fetchall():
        moved[(account, currency, bucket)][kind] += int(amount)
    return statement_lines(opening, moved)


def statement_lines(opening: dict[LineKey, int], moved: dict[LineKey, dict[str, int]]
                    ) -> list[StatementLine]:
    """A line per (account, currency, bucket) with an opening balance or a movement: its
    movements net by kind, and its closing balance."""
    lines = []
    for key in sorted({*opening, *moved}):
        kinds = {k: v for k, v in sorted(moved.get(key, {}).items()) if v}
        first = opening.get(key, 0)
        if first or kinds:
            lines.append(line(key, first, kinds))
    return lines
