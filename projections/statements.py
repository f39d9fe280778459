"""Day and account statements as a read model, so that no close, no opening balance and no
page of a statement costs more than what it touches, however long the history.

Kept as the log is applied:

- ``proj_day_moves``: what moved on each calendar day (the platform's time zone), per
  account, currency, bucket and kind, summed. A close reads only its own day's rows.
- ``proj_line_keys``: every (account, currency, bucket) that ever moved, with its first day:
  the keys a statement's pages walk, in order, one page at a time.
- ``proj_day_balances`` (projections/day_balances.py): each key's running balance at the end
  of every day it moved, written with the day's moves.
- ``proj_closed_days``: the days closed. Applying a ``DayClosed`` writes that row and nothing
  else: the closing balances were written with the day's moves, and a closed day takes no
  more moves, so they stand.

A line's opening balance on a day is its key's last running balance before that day: one
lookup on the primary key, before the first close as after it, for an open day as for a
closed one; never a sum over the days before. A close costs what the day moved: its own
day's movements, and one such lookup per key that moved.

The lines come in (account, currency, bucket) order and a page continues after the last
line of the one before (a keyset, as ListBalances pages), so the pages of a closed day read
back the whole statement whatever is written meanwhile.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ledger.projections.clock import Calendar
from ledger.projections.day_balances import (
    OPENING,
    BalanceKey,
    execute_planned_now,
    write_day_balances,
)
from ledger.projections.db import Cursor, upsert_rows

from ledger.domain.money import Posting
from ledger.domain.periods import DayStatement, StatementLine, moved_lines_digest

# (account, currency, bucket): one line of a statement.
LineKey = tuple[str, str, str]


class StatementWriter:
    """Accumulates one batch's movements by day, then writes them with three upserts."""

    def __init__(self, calendar: Calendar,
                 latest: dict[BalanceKey, tuple[str, int]] | None = None) -> None:
        self.calendar = calendar
        self._latest = latest if latest is not None else {}
        self._moves: dict[tuple[str, str, str, str, str, str], int] = defaultdict(int)
        self._first: dict[BalanceKey, str] = {}
        self._net: dict[BalanceKey, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def post(self, platform: str, postings: Iterable[Posting], at: int, kind: str) -> None:
        day = self.calendar.day(at)
        for p in postings:
            self._moves[(platform, day, p.account, p.currency, p.bucket, kind)] += p.amount
            key = (platform, p.account, p.currency, p.bucket)
            self._net[key][day] += p.amount
            if day < self._first.get(key, "9"):
                self._first[key] = day

    def flush(self, cur: Cursor) -> None:
        if not self._moves:
            return
        upsert_rows(
            cur,
            "proj_day_moves",
            ("platform", "day", "account", "currency", "bucket", "kind", "amount"),
            ("platform", "day", "account", "currency", "bucket", "kind"),
            "amount = proj_day_moves.amount + excluded.amount",
            [(*key, amount) for key, amount in self._moves.items()],
        )
        upsert_rows(
            cur,
            "proj_line_keys",
            ("platform", "account", "currency", "bucket", "first_day"),
            ("platform", "account", "currency", "bucket"),
            "first_day = CASE WHEN excluded.first_day < proj_line_keys.first_day "
            "THEN excluded.first_day ELSE proj_line_keys.first_day END",
            [(*key, day) for key, day in self._first.items()],
        )
        write_day_balances(cur, self._net, self._latest)
        self._moves.clear()
        self._first.clear()
        self._net.clear()


def day_closed(cur: Cursor, platform: str, day: str) -> None:
    """Records ``day`` closed. Its closing balances are already written (with its moves)."""
    cur.execute("INSERT INTO proj_closed_days (platform, day) VALUES (%s, %s)", (platform, day))


def is_closed(cur: Cursor, platform: str, day: str) -> bool:
    cur.execute("SELECT 1 FROM proj_closed_days WHERE platform = %s AND day = %s", (platform, day))
    return cur.fetchone() is not None


def moved_lines(
    cur: Cursor,
    platform: str,
    day: str,
    after: LineKey | None = None,
    last: LineKey | None = None,
) -> dict[LineKey, dict[str, int]]:
    """The day's nonzero movements by key and kind; only keys after ``after`` and up to
    ``last`` when given."""
    where, params = "", [platform, day]
    if after is not None:
        where += " AND (account, currency, bucket) > (%s, %s, %s)"
        params += after
    if last is not None:
        where += " AND (account, currency, bucket) <= (%s, %s, %s)"
        params += last
    cur.execute(
        "SELECT account, currency, bucket, kind, amount FROM proj_day_moves WHERE "
        f"platform = %s AND day = %s AND amount <> 0{where} "
        "ORDER BY account, currency, bucket, kind",
        params,
    )
    moved: dict[LineKey, dict[str, int]] = defaultdict(dict)
    for account, currency, bucket, kind, amount in cur.fetchall():
        moved[(account, currency, bucket)][kind] = int(amount)
    return moved


def line(key: LineKey, opening: int, kinds: dict[str, int]) -> StatementLine:
    account, currency, bucket = key
    movements = tuple(sorted(kinds.items()))
    return StatementLine(
        account, currency, opening, movements, opening + sum(kinds.values()), bucket=bucket
    )


def page_of_lines(
    cur: Cursor, platform: str, day: str, limit: int, after: LineKey | None = None
) -> list[StatementLine]:
    """Up to ``limit`` lines of the day's statement after the line ``after``: every key
    with an opening balance or a movement that day, in (account, currency, bucket) order.

    The keys are walked a chunk at a time and each one's opening computed in the select
    list, after the LIMIT, and kept when it has a line: filtering them in SQL let
    PostgreSQL, with statistics taken before the table filled, compute every key after
    ``after`` (a whole platform's) before sorting them for one page."""
    found: list[tuple[LineKey, int]] = []
    start = after
    while len(found) < limit:
        chunk = limit - len(found)
        where, params = "", [day, day, platform, day]
        if start is not None:
            where = " AND (k.account, k.currency, k.bucket) > (%s, %s, %s)"
            params += start
        execute_planned_now(
            cur,
            "SELECT k.account, k.currency, k.bucket, EXISTS (SELECT 1 FROM proj_day_moves d "
            "WHERE d.platform = k.platform AND d.day = %s AND d.account = k.account AND "
            "d.currency = k.currency AND d.bucket = k.bucket AND d.amount <> 0), "
            f"{OPENING} FROM proj_line_keys k WHERE k.platform = %s AND k.first_day <= %s"
            f"{where} ORDER BY k.account, k.currency, k.bucket LIMIT %s",
            (*params, chunk),
        )
        rows = cur.fetchall()
        found += [((a, c, b), int(v)) for a, c, b, moved, v in rows if moved or v]
        if len(rows) < chunk:
            break
        start = (rows[-1][0], rows[-1][1], rows[-1][2])
    if not found:
        return []
    moved = moved_lines(cur, platform, day, after, found[-1][0])
    return [line(key, opening, moved.get(key, {})) for key, opening in found]


def day_summary(
    cur: Cursor, platform: str, day: str, timezone: str, bounds: tuple[int, int]
) -> DayStatement:
    """The day's statement without its lines, as a close records it: its movements (their
    count, first and last positions, digest) and the lines that moved, digested. Reads the
    day's own movements and, for each key that moved, its opening balance."""
    start, end = bounds
    cur.execute(
        "SELECT position, account, currency, bucket, amount, kind, ref FROM proj_movements "
        "WHERE platform = %s AND at >= %s AND at < %s ORDER BY position, account, bucket",
        (platform, start, end),
    )
    rows = cur.fetchall()
    moved = moved_lines(cur, platform, day)
    execute_planned_now(
        cur,
        f"SELECT k.account, k.currency, k.bucket, {OPENING} FROM (SELECT DISTINCT platform, "
        "account, currency, bucket FROM proj_day_moves WHERE platform = %s AND day = %s AND "
        "amount <> 0) k",
        (day, platform, day),
    )
    lines = [line((a, c, b), int(v), moved[(a, c, b)]) for a, c, b, v in cur.fetchall()]
    return DayStatement(
        day=day,
        timezone=timezone,
        lines=(),
        events=len(rows),
        first_position=int(rows[0][0]) if rows else 0,
        last_position=int(rows[-1][0]) if rows else 0,
        digest=movements_digest(rows),
        moved_lines=len(lines),
        moved_lines_digest=moved_lines_digest(lines),
    )


def movements_digest(rows: Iterable[tuple[Any, ...]]) -> str:
    """SHA-256 over a day's movements (position, account, currency, bucket, amount, kind,
    source), in log order."""
    digest = hashlib.sha256()
    for position, account, currency, bucket, amount, kind, ref in rows:
        digest.update(f"{position}|{account}|{currency}|{bucket}|{amount}|{kind}|{ref}\n".encode())
    return digest.hexdigest()


def account_openings(cur: Cursor, platform: str, account: str, day: str) -> dict[LineKey, int]:
    """The account's balance per currency and bucket at the start of ``day``."""
    execute_planned_now(
        cur,
        f"SELECT k.account, k.currency, k.bucket, {OPENING} FROM proj_line_keys k WHERE "
        "k.platform = %s AND k.account = %s AND k.first_day < %s",
        (day, platform, account, day),
    )
    return {(a, c, b): int(v) for a, c, b, v in cur.fetchall() if v}
