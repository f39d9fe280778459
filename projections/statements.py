"""Day and account statements as a read model, so that no close and no page of a statement
costs more than what it touches.

Kept as the log is applied:

- ``proj_day_moves``: what moved on each calendar day (the platform's time zone), per
  account, currency, bucket and kind, summed. A close reads only its own day's rows.
- ``proj_line_keys``: every (account, currency, bucket) that ever moved, with its first day:
  the keys a statement's pages walk, in order, one page at a time.
- ``proj_closed_days`` and ``proj_day_closings``: when a ``DayClosed`` is applied, the
  closing balance of every key that moved since the close before it (in one statement, of
  the rows of those days alone). A key that did not move keeps its last closing balance.

A line's opening balance on a day is then the key's last closing balance at or before the
last day closed before it, plus what moved between that day and this one (nothing, when the
day before is closed, as it always is once the first day has closed): never the sum of all
of history, except before the first close, when nothing was closed to start from.

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
from ledger.projections.db import Cursor, upsert_rows

from ledger.domain.money import Posting
from ledger.domain.periods import DayStatement, StatementLine, moved_lines_digest

# (account, currency, bucket): one line of a statement.
LineKey = tuple[str, str, str]


class StatementWriter:
    """Accumulates one batch's movements by day, then writes them with two upserts."""

    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar
        self._moves: dict[tuple[str, str, str, str, str, str], int] = defaultdict(int)
        self._first: dict[tuple[str, str, str, str], str] = {}

    def post(self, platform: str, postings: Iterable[Posting], at: int, kind: str) -> None:
        day = self.calendar.day(at)
        for p in postings:
            self._moves[(platform, day, p.account, p.currency, p.bucket, kind)] += p.amount
            key = (platform, p.account, p.currency, p.bucket)
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
        self._moves.clear()
        self._first.clear()


def day_closed(cur: Cursor, platform: str, day: str) -> None:
    """Records ``day`` closed with the closing balance of each key that moved since the
    last day closed before it (its last closing balance plus those days' movements). Days
    close in order, so that is the day before, except at the first close."""
    since = last_closed_before(cur, platform, day)
    cur.execute(
        "INSERT INTO proj_day_closings (platform, account, currency, bucket, day, closing) "
        f"SELECT k.platform, k.account, k.currency, k.bucket, %s, SUM(k.amount) + {LAST_CLOSING} "
        "FROM proj_day_moves k WHERE k.platform = %s AND k.day > %s AND k.day <= %s "
        "GROUP BY k.platform, k.account, k.currency, k.bucket",
        (day, since, platform, since, day),
    )
    cur.execute("INSERT INTO proj_closed_days (platform, day) VALUES (%s, %s)", (platform, day))


def last_closed_before(cur: Cursor, platform: str, day: str) -> str:
    """The last day closed before ``day``; '' when none was."""
    cur.execute(
        "SELECT MAX(day) FROM proj_closed_days WHERE platform = %s AND day < %s", (platform, day)
    )
    row = cur.fetchone()
    return row[0] or "" if row else ""


def is_closed(cur: Cursor, platform: str, day: str) -> bool:
    cur.execute("SELECT 1 FROM proj_closed_days WHERE platform = %s AND day = %s", (platform, day))
    return cur.fetchone() is not None


# The closing balance of key ``k`` as of the last closed day given (a parameter), 0 before.
LAST_CLOSING = (
    "COALESCE((SELECT c.closing FROM proj_day_closings c WHERE c.platform = k.platform AND "
    "c.account = k.account AND c.currency = k.currency AND c.bucket = k.bucket AND "
    "c.day <= %s ORDER BY c.day DESC LIMIT 1), 0)"
)
# What moved on key ``k`` after one day and before another (both parameters).
MOVED_BETWEEN = (
    "COALESCE((SELECT SUM(m.amount) FROM proj_day_moves m WHERE m.platform = k.platform AND "
    "m.account = k.account AND m.currency = k.currency AND m.bucket = k.bucket AND "
    "m.day > %s AND m.day < %s), 0)"
)
OPENING = f"{LAST_CLOSING} + {MOVED_BETWEEN}"


def opening_params(since: str, day: str) -> tuple[str, str, str]:
    return since, since, day


def moved_lines(
    cur: Cursor,
    platform: str,
    day: str,
    since: str,
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
    since = last_closed_before(cur, platform, day)
    found: list[tuple[LineKey, int]] = []
    start = after
    while len(found) < limit:
        chunk = limit - len(found)
        where, params = "", [day, *opening_params(since, day), platform, day]
        if start is not None:
            where = " AND (k.account, k.currency, k.bucket) > (%s, %s, %s)"
            params += start
        cur.execute(
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
    moved = moved_lines(cur, platform, day, since, after, found[-1][0])
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
    since = last_closed_before(cur, platform, day)
    moved = moved_lines(cur, platform, day, since)
    cur.execute(
        f"SELECT k.account, k.currency, k.bucket, {OPENING} FROM (SELECT DISTINCT platform, "
        "account, currency, bucket FROM proj_day_moves WHERE platform = %s AND day = %s AND "
        "amount <> 0) k",
        (*opening_params(since, day), platform, day),
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
    since = last_closed_before(cur, platform, day)
    cur.execute(
        f"SELECT k.account, k.currency, k.bucket, {OPENING} FROM proj_line_keys k WHERE "
        "k.platform = %s AND k.account = %s AND k.first_day < %s",
        (*opening_params(since, day), platform, account, day),
    )
    return {(a, c, b): int(v) for a, c, b, v in cur.fetchall() if v}
