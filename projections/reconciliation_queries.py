"""Reconciliation's read models as finance reads them: a day's state (not run, clean, breaks
open or acknowledged) and its breaks, a page at a time, with both sides of each. Written by
reconciliation.py."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.projections.db import Cursor
from ledger.projections.reconciliation import ACKNOWLEDGED, OPEN, RESOLVED

NOT_RUN = "not_run"
CLEAN = "clean"
BREAKS_OPEN = "breaks_open"
BREAKS_ACKNOWLEDGED = "breaks_acknowledged"


@dataclass(frozen=True)
class Side:
    day: str
    amount: int
    currency: str
    state: str
    rail_refs: tuple[str, ...]


def side(text: str) -> Side | None:
    if not text:
        return None
    day, amount, currency, state, refs = text.split("|", 4)
    return Side(day, int(amount), currency, state, tuple(r for r in refs.split(",") if r))


@dataclass(frozen=True)
class BreakRow:
    day: str
    break_id: str
    bill_kind: str
    kind: str
    ref: str
    type: str
    status: str
    ledger: Side | None
    bill: Side | None
    resolved_by: str
    reason: str
    acknowledged_by: str


@dataclass(frozen=True)
class DayReconciliation:
    day: str
    state: str
    matched: int
    timing: int
    open: int
    acknowledged: int
    resolved: int


BREAK_COLUMNS = (
    "day, break_id, bill_kind, kind, ref, type, status, ledger, bill, "
    "resolved_by, reason, acknowledged_by"
)


def _break(row: tuple) -> BreakRow:  # type: ignore[type-arg]
    day, break_id, bill_kind, kind, ref, kind_of_break, status, ledger, bill, *rest = row
    return BreakRow(
        day, break_id, bill_kind, kind, ref, kind_of_break, status, side(ledger), side(bill), *rest
    )


def breaks(
    cur: Cursor,
    platform: str,
    day: str,
    bill_kind: str,
    status: str,
    limit: int,
    after: str | None = None,
) -> list[BreakRow]:
    """A page of the day's breaks in break id order, after ``after`` when given; ''
    ``bill_kind`` or ``status``: all."""
    query = f"SELECT {BREAK_COLUMNS} FROM proj_breaks WHERE platform = %s AND day = %s"
    params: list[object] = [platform, day]
    for column, value in (("bill_kind", bill_kind), ("status", status)):
        if value:
            query += f" AND {column} = %s"
            params.append(value)
    if after is not None:
        query += " AND break_id > %s"
        params.append(after)
    cur.execute(f"{query} ORDER BY break_id LIMIT %s", (*params, limit))
    return [_break(row) for row in cur.fetchall()]


def find_break(cur: Cursor, platform: str, day: str, break_id: str) -> BreakRow | None:
    cur.execute(
        f"SELECT {BREAK_COLUMNS} FROM proj_breaks WHERE platform = %s AND day = %s "
        "AND break_id = %s",
        (platform, day, break_id),
    )
    row = cur.fetchone()
    return _break(row) if row is not None else None


def day_reconciliation(cur: Cursor, platform: str, day: str) -> DayReconciliation:
    """The day's state: not run without a bill; breaks open while one is; breaks
    acknowledged when finance accepted some and none is open; else clean."""
    cur.execute(
        "SELECT COUNT(*) FROM proj_rail_bills WHERE platform = %s AND day = %s", (platform, day)
    )
    row = cur.fetchone()
    bills = int(row[0]) if row else 0
    cur.execute(
        "SELECT COALESCE(SUM(matched), 0), COALESCE(SUM(timing), 0) FROM "
        "proj_reconciled WHERE platform = %s AND day = %s",
        (platform, day),
    )
    matched, timing = cur.fetchone() or (0, 0)
    cur.execute(
        "SELECT status, COUNT(*) FROM proj_breaks WHERE platform = %s AND day = %s GROUP BY status",
        (platform, day),
    )
    counts = {status: int(n) for status, n in cur.fetchall()}
    opened, acked = counts.get(OPEN, 0), counts.get(ACKNOWLEDGED, 0)
    state = (
        NOT_RUN if not bills else BREAKS_OPEN if opened else BREAKS_ACKNOWLEDGED if acked else CLEAN
    )
    return DayReconciliation(
        day, state, int(matched), int(timing), opened, acked, counts.get(RESOLVED, 0)
    )


def bill_day(cur: Cursor, platform: str, digest: str) -> tuple[str, str, int] | None:
    """(day, kind, lines) of an imported bill, once the read models hold it."""
    cur.execute(
        "SELECT day, kind, lines FROM proj_rail_bills WHERE platform = %s AND digest = %s",
        (platform, digest),
    )
    row = cur.fetchone()
    return (row[0], row[1], int(row[2])) if row is not None else None
