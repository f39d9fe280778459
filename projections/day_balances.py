"""Each statement line's running balance at the end of every day it moved
(``proj_day_balances``), so that an opening balance is one row, however long the history.

A key is (platform, account, currency, bucket). Its row for a day holds the sum of every
amount it moved on that day and before; a day it did not move has no row. Its opening balance
on a day is then the balance of its last row before that day: one lookup on the primary key
(platform, account, currency, bucket, day) read backwards, the same cost on the first day as
after ten years, before the first close as after it, for an open day as for a closed one.

The rows are written with the batch of moves that changes them: one lookup of each moved
key's latest row (none for the keys the writer remembers from the batches before), then one
upsert. A move into a day before the key's latest row (a late
payment into yesterday while it is still open, or a backfill) rewrites that key's rows from
that day on: the key's days since the last close, or, before the first close, since the
move's day. Nothing lands in a closed day, so a closed day's rows stand.

Every lookup is a scalar subquery ordered on the primary key with LIMIT 1, in a statement of
its own that writes nothing: not a join a planner could turn into a hash join over the whole
table, and not a read of the table the same statement fills. (The close this replaced read
its closings table while filling it in one INSERT … SELECT; PostgreSQL, with statistics
taken while the tables were empty, planned it as a sequential scan per key of the rows
already inserted, and took 88 s at 100,000 keys.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ledger.projections.db import Cursor, upsert_rows

# (platform, account, currency, bucket)
BalanceKey = tuple[str, str, str, str]
# Keys looked up per statement (four parameters each).
LOOKUP_CHUNK = 1000

# The balance of key ``k`` (an alias the query gives) at the start of a day (a parameter):
# its last row before that day, 0 when it had not moved.
OPENING = (
    "COALESCE((SELECT b.balance FROM proj_day_balances b WHERE b.platform = k.platform AND "
    "b.account = k.account AND b.currency = k.currency AND b.bucket = k.bucket AND "
    "b.day < %s ORDER BY b.day DESC LIMIT 1), 0)"
)
# Key ``v``'s last row as 'day balance' (one probe of the index for both).
_LATEST = (
    "(SELECT b.day || ' ' || b.balance FROM proj_day_balances b WHERE b.platform = v.column1 "
    "AND b.account = v.column2 AND b.currency = v.column3 AND b.bucket = v.column4 "
    "ORDER BY b.day DESC LIMIT 1)"
)


def execute_planned_now(cur: Cursor, sql: str, params: Sequence[Any] = ()) -> Any:
    """Executes ``sql`` with a plan made for this execution from the tables as they are.
    psycopg prepares a statement run five times on a connection, and PostgreSQL may then
    keep one generic plan: one made while a table was small can scan it whole for each key
    once it is large. The per-key lookups of the statements go through here."""
    if getattr(cur, "copy", None) is not None:
        return cur.execute(sql, params, prepare=False)  # type: ignore[call-arg]
    return cur.execute(sql, params)


def running_balances(known: Sequence[tuple[str, int]], moved: Mapping[str, int]
                     ) -> list[tuple[str, int]]:
    """The key's rows, (day, balance), from its first day in ``moved`` on, once the amounts
    ``moved`` per day are added. ``known`` is what the key's rows held before, in day order,
    from its last row before that first day (if any) on: each day's balance is the last
    known balance at or before it plus everything moved up to it."""
    first = min(moved)
    before = [balance for day, balance in known if day < first]
    held = dict((day, balance) for day, balance in known if day >= first)
    last, added, rows = (before[-1] if before else 0), 0, []
    for day in sorted({*held, *moved}):
        last = held.get(day, last)
        added += moved.get(day, 0)
        rows.append((day, last + added))
    return rows


def latest_rows(cur: Cursor, keys: Sequence[BalanceKey]) -> dict[BalanceKey, tuple[str, int]]:
    """Each key's last row, (day, balance); keys with none are left out."""
    found: dict[BalanceKey, tuple[str, int]] = {}
    for start in range(0, len(keys), LOOKUP_CHUNK):
        chunk = keys[start:start + LOOKUP_CHUNK]
        values = ", ".join(["(%s, %s, %s, %s)"] * len(chunk))
        execute_planned_now(
            cur,
            f"SELECT v.column1, v.column2, v.column3, v.column4, {_LATEST} "
            f"FROM (VALUES {values}) AS v",
            [part for key in chunk for part in key],
        )
        for platform, account, currency, bucket, last in cur.fetchall():
            if last is not None:
                day, balance = last.split(" ")
                found[(platform, account, currency, bucket)] = (day, int(balance))
    return found


def rows_from(cur: Cursor, key: BalanceKey, day: str) -> list[tuple[str, int]]:
    """The key's last row before ``day`` and every row from it on, in day order."""
    where = "platform = %s AND account = %s AND currency = %s AND bucket = %s"
    execute_planned_now(
        cur,
        f"SELECT day, balance FROM proj_day_balances WHERE {where} AND day < %s "
        "ORDER BY day DESC LIMIT 1",
        (*key, day),
    )
    rows = [(d, int(b)) for d, b in cur.fetchall()]
    execute_planned_now(
        cur,
        f"SELECT day, balance FROM proj_day_balances WHERE {where} AND day >= %s ORDER BY day",
        (*key, day),
    )
    return rows + [(d, int(b)) for d, b in cur.fetchall()]


def write_day_balances(cur: Cursor, moved: Mapping[BalanceKey, Mapping[str, int]],
                       latest: dict[BalanceKey, tuple[str, int]]) -> None:
    """Adds a batch's net amounts per key and day to the keys' running balances.
    ``latest`` holds keys' last rows as this writer left them (the runner keeps it between
    batches while no other process applies the log): those keys are not looked up, and
    every key written is left there."""
    if not moved:
        return
    latest.update(latest_rows(cur, [key for key in moved if key not in latest]))
    rows = []
    for key, days in moved.items():
        last = latest.get(key)
        if last is not None and last[0] > min(days):
            known = rows_from(cur, key, min(days))  # a move into a day before its latest
        else:
            known = [last] if last is not None else []
        written = running_balances(known, days)
        latest[key] = written[-1]
        rows += [(*key, day, balance) for day, balance in written]
    upsert_rows(
        cur,
        "proj_day_balances",
        ("platform", "account", "currency", "bucket", "day", "balance"),
        ("platform", "account", "currency", "bucket", "day"),
        "balance = excluded.balance",
        rows,
    )
