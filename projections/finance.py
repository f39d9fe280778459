"""Finance's read models: due orders, payable payouts, day and account statements.

A statement line gives, for one account and currency, the opening balance (every bucket
together), the day's movements by kind, and the closing balance; the day's digest is a
SHA-256 over its movements in log order, so anyone replaying the log gets the same digest.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ledger.domain.order import OrderKey
from ledger.domain.periods import DayStatement, StatementLine
from projections.clock import micros
from projections.db import Cursor


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


def payable(cur: Cursor, platform: str, offset: int, limit: int,
            after: tuple[int, str] | None = None) -> list[PayoutRow]:
    """Payouts waiting for finance, oldest first; those after ``after`` (request time, id)."""
    since, params = "", [platform]
    if after is not None:
        since = " AND (requested_at > %s OR (requested_at = %s AND payout_id > %s))"
        params += [after[0], after[0], after[1]]
    cur.execute(
        "SELECT payout_id, account, currency, amount, status, requested_by, requested_at, "
        "updated_at, reference, reason FROM proj_payouts WHERE platform = %s AND "
        f"status IN ('requested', 'approved'){since} ORDER BY requested_at, payout_id "
        "LIMIT %s OFFSET %s", (*params, limit, offset))
    return [PayoutRow(*row) for row in cur.fetchall()]


# (account, currency, bucket): one line of a statement.
LineKey = tuple[str, str, str]


def day_statement(cur: Cursor, platform: str, day: str, timezone: str) -> DayStatement:
    start, end = day_bounds(day, timezone)
    cur.execute(
        "SELECT account, currency, bucket, SUM(amount) FROM proj_movements WHERE platform = %s "
        "AND at < %s GROUP BY account, currency, bucket", (platform, start))
    opening = {(a, c, b): int(v) for a, c, b, v in cur.fetchall()}
    cur.execute(
        "SELECT position, account, currency, bucket, amount, kind, ref FROM proj_movements "
        "WHERE platform = %s AND at >= %s AND at < %s ORDER BY position, account, bucket",
        (platform, start, end))
    rows = cur.fetchall()
    digest = hashlib.sha256()
    by_kind: dict[LineKey, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for position, account, currency, bucket, amount, kind, ref in rows:
        digest.update(f"{position}|{account}|{currency}|{bucket}|{amount}|{kind}|{ref}\n"
                      .encode())
        by_kind[(account, currency, bucket)][kind] += int(amount)
    return DayStatement(
        day=day, timezone=timezone, lines=tuple(statement_lines(opening, by_kind)),
        events=len(rows),
        first_position=int(rows[0][0]) if rows else 0,
        last_position=int(rows[-1][0]) if rows else 0, digest=digest.hexdigest(),
    )


@dataclass(frozen=True)
class Movement:
    position: int
    at: int
    currency: str
    bucket: str
    amount: int
    kind: str
    source: str


def account_statement(
    cur: Cursor, platform: str, account: str, from_day: str, to_day: str, timezone: str
) -> tuple[list[Movement], list[StatementLine]]:
    start, _ = day_bounds(from_day, timezone)
    _, end = day_bounds(to_day, timezone)
    cur.execute(
        "SELECT position, at, currency, bucket, amount, kind, ref FROM proj_movements WHERE "
        "platform = %s AND account = %s AND at >= %s AND at < %s ORDER BY position, bucket",
        (platform, account, start, end))
    movements = [Movement(int(p), int(a), c, b, int(v), k, r)
                 for p, a, c, b, v, k, r in cur.fetchall()]
    cur.execute("SELECT currency, bucket, SUM(amount) FROM proj_movements WHERE platform = %s "
                "AND account = %s AND at < %s GROUP BY currency, bucket",
                (platform, account, start))
    opening = {(account, c, b): int(v) for c, b, v in cur.fetchall()}
    moved: dict[LineKey, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for m in movements:
        moved[(account, m.currency, m.bucket)][m.kind] += m.amount
    return movements, statement_lines(opening, moved)


def statement_lines(opening: dict[LineKey, int], moved: dict[LineKey, dict[str, int]]
                    ) -> list[StatementLine]:
    """A line per (account, currency, bucket) with an opening balance or a movement: its
    movements net by kind, and its closing balance."""
    lines = []
    for key in sorted({*opening, *moved}):
        kinds = {k: v for k, v in sorted(moved.get(key, {}).items()) if v}
        first = opening.get(key, 0)
        if first or kinds:
            account, currency, bucket = key
            lines.append(StatementLine(account, currency, first, tuple(kinds.items()),
                                       first + sum(kinds.values()), bucket=bucket))
    return lines
