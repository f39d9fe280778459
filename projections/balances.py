"""Balances per account and currency, built from the postings written into the events.

Each posting moves one bucket of one account: frozen, available, in flight, paid out (and
``clearing`` for the customer-funds clearing account). A balance's debt is what its available
bucket is below zero. Every movement is also kept with its log position and time, so any
account can be read as of a past position or moment, and every day's movements are summed
for the statements (projections/statements.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ledger.projections.clock import Calendar
from ledger.projections.db import Cursor, append_rows, upsert_rows
from ledger.projections.statements import StatementWriter

from ledger.domain.money import Posting

BUCKETS = ("frozen", "available", "in_flight", "paid_out", "clearing")
KINDS = ("reseller", "supplier", "platform", "clearing", "tax")
# Each ordering of a list of balances: the buckets whose sum sorts it, largest first (none:
# by account alone), then account and currency. The SQL and the page tokens both follow it.
ORDERINGS: dict[str, tuple[str, ...]] = {
    "account": (),
    "frozen_desc": ("frozen",),
    "available_desc": ("available",),
    "total_desc": ("frozen", "available", "in_flight"),
}


def account_kind(account: str) -> str:
    return account.split(":", 1)[0]


@dataclass(frozen=True)
class Balance:
    platform: str
    account: str
    currency: str
    frozen: int = 0
    available: int = 0
    in_flight: int = 0
    paid_out: int = 0
    clearing: int = 0
    last_position: int = 0

    @property
    def kind(self) -> str:
        return account_kind(self.account)

    @property
    def debt(self) -> int:
        return max(0, -self.available)

    @property
    def total(self) -> int:
        """What the ledger holds for the account: every bucket."""
        return self.frozen + self.available + self.in_flight + self.paid_out + self.clearing


class BalanceWriter:
    """Accumulates one batch's postings, then writes them with a few statements."""

    def __init__(self, calendar: Calendar,
                 latest: dict[tuple[str, str, str, str], tuple[str, int]] | None = None) -> None:
        """``latest``: each key's last running balance as the writer last left it, kept
        between batches (see projections/day_balances.py)."""
        self.days = StatementWriter(calendar, latest)
        self._deltas: dict[tuple[str, str, str], dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(BUCKETS, 0)
        )
        self._last: dict[tuple[str, str, str], int] = {}
        self._movements: list[tuple[str, str, str, str, int, int, int, str, str]] = []

    def post(self, platform: str, postings: Iterable[Posting], position: int, at: int,
             kind: str, ref: str) -> None:
        """``kind`` names what moved the money (payment, refund, settlement, payout_…) and
        ``ref`` where it came from (order:shop-a/O1, order:shop-a/O1/refund:r1, payout:PO…;
        an order placed before ids were scoped to storefronts: order:O1)."""
        postings = tuple(postings)
        for p in postings:
            assert p.bucket in BUCKETS, f"unknown bucket {p.bucket}"
            key = (platform, p.account, p.currency)
            self._deltas[key][p.bucket] += p.amount
            self._last[key] = position
            self._movements.append(
                (platform, p.account, p.currency, p.bucket, position, at, p.amount, kind, ref)
            )
        self.days.post(platform, postings, at, kind)

    def flush(self, cur: Cursor) -> None:
        if not self._deltas:
            return
        upsert_rows(
            cur, "proj_balances", ("platform", "account", "currency", "kind", *BUCKETS,
                                   "last_position"), ("platform", "account", "currency"),
            "frozen = proj_balances.frozen + excluded.frozen, "
            "available = proj_balances.available + excluded.available, "
            "in_flight = proj_balances.in_flight + excluded.in_flight, "
            "paid_out = proj_balances.paid_out + excluded.paid_out, "
            "clearing = proj_balances.clearing + excluded.clearing, "
            "last_position = excluded.last_position",
            [
                (*key, account_kind(key[1]), *(d[b] for b in BUCKETS), self._last[key])
                for key, d in self._deltas.items()
            ],
        )
        append_rows(cur, "proj_movements", ("platform", "account", "currency", "bucket",
                                            "position", "at", "amount", "kind", "ref"),
                    self._movements)
        self._deltas.clear()
        self._last.clear()
        self._movements.clear()
        self.days.flush(cur)


# --- queries -------------------------------------------------------------------------------

COLUMNS = "platform, account, currency, frozen, available, in_flight, paid_out, clearing, " \
          "last_position"


def balances_of(cur: Cursor, platform: str, account: str) -> list[Balance]:
    cur.execute(f"SELECT {COLUMNS} FROM proj_balances WHERE platform = %s AND account = %s "
                "ORDER BY currency", (platform, account))
    return [Balance(*row) for row in cur.fetchall()]


def balances_as_of(
    cur: Cursor, platform: str, account: str, *, position: int, at: int
) -> list[Balance]:
    """The account as it stood after log position ``position`` and time ``at`` (both bound)."""
    cur.execute(
        "SELECT currency, bucket, SUM(amount), MAX(position) FROM proj_movements "
        "WHERE platform = %s AND account = %s AND position <= %s AND at <= %s "
        "GROUP BY currency, bucket ORDER BY currency",
        (platform, account, position, at),
    )
    by_currency: dict[str, dict[str, int]] = defaultdict(dict)
    for currency, bucket, amount, last in cur.fetchall():
        by_currency[currency][bucket] = int(amount)
        by_currency[currency]["last_position"] = max(
            by_currency[currency].get("last_position", 0), int(last)
        )
    return [Balance(platform, account, currency, **values)
            for currency, values in by_currency.items()]


def sort_value(b: Balance, order_by: str) -> int:
    """The value ``order_by`` sorts ``b`` by (0 when it sorts by account alone)."""
    return sum(getattr(b, bucket) for bucket in ORDERINGS[order_by])


def page_of_balances(
    cur: Cursor, platform: str, *, kind: str, currency: str, order_by: str, offset: int,
    limit: int, after: tuple[int, str, str] | None = None,
) -> list[Balance]:
    """A page in ``order_by``'s order; those after ``after`` (its sort value, account and
    currency: where the previous page ended) when given."""
    buckets = ORDERINGS[order_by]
    value_sql = f"({' + '.join(buckets)})" if buckets else ""
    where = ["platform = %s"]
    params: list[object] = [platform]
    if after is not None:
        value, account, curr = after
        where.append("(account > %s OR (account = %s AND currency > %s))")
        params += [account, account, curr]
        if value_sql:
            where[-1] = f"({value_sql} < %s OR ({value_sql} = %s AND {where[-1]}))"
            params[-3:-3] = [value, value]
    if kind:
        where.append("kind = %s")
        params.append(kind)
    if currency:
        where.append("currency = %s")
        params.append(currency)
    cur.execute(
        f"SELECT {COLUMNS} FROM proj_balances WHERE {' AND '.join(where)} "
        f"ORDER BY {value_sql + ' DESC, ' if value_sql else ''}account, currency "
        "LIMIT %s OFFSET %s",
        (*params, limit, offset),
    )
    return [Balance(*row) for row in cur.fetchall()]


def totals_by_currency(cur: Cursor) -> dict[str, int]:
    """Double entry across every account of every platform: each currency sums to zero."""
    cur.execute("SELECT currency, SUM(frozen + available + in_flight + paid_out + clearing) "
                "FROM proj_balances GROUP BY currency")
    return {currency: int(total) for currency, total in cur.fetchall()}
