"""Opening balances from each key's running balance per day: before any close they equal the
plain sum of history, in whatever order the days' moves arrive, and a close after a long
history reads back as the old computation (every opening summed over all of history) did."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger.clients.sdk import LedgerClient
from ledger.projections.balances import BalanceWriter
from ledger.projections.clock import Calendar
from ledger.projections.day_balances import running_balances
from ledger.projections.db import Cursor, ProjectionDB
from ledger.projections.finance import day_bounds
from ledger.projections.statements import account_openings, day_summary, page_of_lines
from psycopg import sql

from ledger.domain.money import Posting
from ledger.domain.periods import StatementLine
from ledger.v1 import storefront_pb2
from tests.conftest import POSTGRES_URL, Clock, drop_schema, example_store
from tests.e2e.test_day_statements import (
    ACCOUNTS,
    ZONE,
    all_lines,
    close,
    moved,
    noon,
    pages,
    reference,
    reference_statement,
    summary_of,
)
from tests.e2e.test_day_statements import movement as five_day_movement
from tests.e2e.test_settlement_payouts import Books
from tests.helpers import place, refund, team

# --- the running balance of one key, as a pure function -----------------------------------

amounts = st.dictionaries(st.integers(0, 30), st.integers(-1000, 1000), max_size=12)


@settings(max_examples=500, deadline=None)
@given(history=amounts, batch=amounts.filter(bool))
def test_each_days_running_balance_is_the_sum_of_every_amount_up_to_that_day(
    history: dict[int, int], batch: dict[int, int]
) -> None:
    """A key's rows before a batch hold the cumulative sums of its history; after the batch
    (in any days, before, among or after the rows) every row from the batch's first day on
    is the cumulative sum of history and batch, and a row for each day the batch moved."""
    def day(n: int) -> str:
        return f"2026-11-{1 + n:02}"

    def cumulative(amounts: dict[int, int], days: set[int]) -> dict[str, int]:
        return {day(d): sum(v for e, v in amounts.items() if e <= d) for d in days}

    rows = sorted(cumulative(history, set(history)).items())
    first = day(min(batch))
    before = [r for r in rows if r[0] < first]
    known = before[-1:] + [r for r in rows if r[0] >= first]
    both = {d: history.get(d, 0) + batch.get(d, 0) for d in {*history, *batch}}
    expected = cumulative(both, {d for d in both if day(d) >= first})
    assert dict(running_balances(known, {day(d): v for d, v in batch.items()})) == expected


# --- the read model, before any close, against the plain sum of history ------------------

DAYS = 12

# test_day_statements' movements (account, bucket, kind, amount), into twelve days.
movement = st.tuples(st.integers(0, DAYS - 1), five_day_movement).map(
    lambda drawn: (drawn[0], *drawn[1][1:5]))


def models_db(store_url: str, tmp_path: Path) -> tuple[ProjectionDB, str]:
    """The read models' tables alone, in a SQLite file or a PostgreSQL schema of their own."""
    url = example_store(store_url, tmp_path)
    if url.startswith("postgresql"):
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(
                sql.Identifier(url.rsplit("schema=", 1)[1])))
    return ProjectionDB(url), url


def read_all_pages(cur: Cursor, day: str, size: int) -> list[StatementLine]:
    found: list[StatementLine] = []
    while True:
        after = (found[-1].account, found[-1].currency, found[-1].bucket) if found else None
        page = page_of_lines(cur, "acme", day, size, after)
        found += page
        if len(page) < size:
            return found


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=st.lists(movement, max_size=60), seed=st.integers(0, 2**32),
       batches=st.integers(1, 6), size=st.integers(1, 5))
def test_openings_before_any_close_equal_the_plain_sum_of_history(
    store_url: str, tmp_path: Path, moves: list[tuple[int, str, str, str, int]], seed: int,
    batches: int, size: int,
) -> None:
    """Movements into twelve days applied in a random log order (later days before earlier
    ones too), a few batches at a time, and no day closed: every day's statement, paged,
    its summary and each account's openings are what summing all of history gives."""
    order = moves[:]
    random.Random(seed).shuffle(order)
    db, url = models_db(store_url, tmp_path)
    conn = db.connect()
    try:
        db.create(conn)
        calendar = Calendar(ZONE)
        for start in range(0, len(order), max(1, len(order) // batches)):
            with db.transaction(conn) as cur:
                writer = BalanceWriter(calendar)
                for n, (day, account, bucket, kind, amount) in enumerate(
                        order[start:start + max(1, len(order) // batches)], start=start + 1):
                    writer.post("acme", [Posting(account, bucket, "CNY", amount)], n,
                                noon(day), kind, f"ref{n}")
                writer.flush(cur)
        with db.transaction(conn, write=False) as cur:
            for day in range(DAYS + 1):
                name = f"2026-11-{1 + day:02}"
                expected = reference_statement(cur, "acme", name)
                assert read_all_pages(cur, name, size) == list(expected.lines), name
                summary = day_summary(cur, "acme", name, ZONE, day_bounds(name, ZONE))
                assert summary_of(summary) == summary_of(expected)
                assert (summary.moved_lines, summary.moved_lines_digest) == moved(expected)
                for account in ACCOUNTS:
                    sums: dict[tuple[str, str, str], int] = defaultdict(int)
                    for d, a, b, _, v in moves:
                        if a == account and d < day:
                            sums[(a, "CNY", b)] += v
                    assert account_openings(cur, "acme", account, name) == {
                        k: v for k, v in sums.items() if v}, (name, account)
    finally:
        conn.close()
        if url.startswith("postgresql"):
            drop_schema(url)


# --- a close after a long history, through the API ---------------------------------------

def test_a_close_after_a_long_history_reads_back_as_the_old_computation(
    store_url: str, shop: LedgerClient, finance: LedgerClient, clock: Clock
) -> None:
    """Forty days of sales and refunds with no close, then the first close on day 35 and
    the days after it in order: each statement, its summary and its lines that moved are
    those the old computation (openings summed over all of history) gives, for the days
    closed and for the open day after them."""
    books = Books(shop)
    team(shop)
    for n in range(40):  # 2026-11-01 … 2026-12-10
        for reseller in ("carol", "bob"):
            oid = f"{reseller}{n}"
            place(shop, oid, reseller=reseller)
            books.saw(shop.storefront.PayOrder(storefront_pb2.PayOrderRequest(
                idempotency_key=f"p-{oid}", order_id=oid, payment_id=f"w-{oid}",
                amount=9999)).receipt)
        if n % 3 == 0:
            books.saw(refund(shop, f"carol{n}", f"r{n}", (1, 3333)).receipt)
        clock.advance(days=1)
    days = [f"2026-12-{d:02}" for d in range(5, 11)]  # days 35 … 40
    for day in days[:-1]:
        reply = close(finance, day)
        expected = reference(store_url, day)
        assert reply.statement.closed
        assert (reply.statement.moved_lines, reply.statement.moved_lines_digest) == moved(
            expected)
    for day in (*days, "2026-11-20"):
        expected = reference(store_url, day)
        assert expected.lines and all(x.opening for x in expected.lines if x.movements)
        assert all_lines(finance, day, 3, books.position) == list(expected.lines), day
        [whole] = pages(finance, day, 1000, books.position)
        statement = whole.statement
        assert (statement.movements, statement.first_position, statement.last_position,
                statement.digest) == summary_of(expected)
        assert statement.closed == (day in days[:-1])


# --- the plans, with the statistics a fresh deployment can have ---------------------------

class Explaining:
    """A cursor that has PostgreSQL explain each query on proj_day_balances before running
    it, and keeps the statements that write it."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur
        self.plans: list[str] = []
        self.writes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cur, name)

    def execute(self, statement: str, params: Any = (), **options: Any) -> Any:
        if "proj_day_balances" in statement:
            if statement.startswith("SELECT"):
                self.cur.execute(f"EXPLAIN {statement}", params, **options)
                self.plans.append("\n".join(row[0] for row in self.cur.fetchall()))
            else:
                self.writes.append(statement)
        return self.cur.execute(statement, params, **options)


def test_each_key_is_one_probe_of_the_primary_key_while_the_planner_believes_the_tables_empty(
    postgres_url: str,
) -> None:
    """The tables ANALYZEd while empty, then 30,000 keys moving on four days: the balances a
    batch of moves reads (in order and into an earlier day), a close's summary, a page and an
    account's openings each probe the primary key per key, never scan the table; and no
    statement that writes the balances reads them (the plans are read; nothing is timed)."""
    db = ProjectionDB(postgres_url)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(
            sql.Identifier(postgres_url.rsplit("schema=", 1)[1])))
    conn = db.connect()
    try:
        db.create(conn)
        conn.execute("ANALYZE")
        account = "'reseller:' || lpad(i::text, 6, '0')"
        conn.execute(
            f"INSERT INTO proj_day_balances SELECT 'acme', {account}, 'CNY', 'frozen', "
            "'2026-11-0' || d, 100 * d FROM generate_series(1, 30000) i, generate_series(1, 4) d")
        conn.execute(
            f"INSERT INTO proj_day_moves SELECT 'acme', '2026-11-0' || d, {account}, 'CNY', "
            "'frozen', 'payment', 100 FROM generate_series(1, 30000) i, generate_series(1, 4) d")
        conn.execute(f"INSERT INTO proj_line_keys SELECT 'acme', {account}, 'CNY', 'frozen', "
                     "'2026-11-01' FROM generate_series(1, 30000) i")
        with db.transaction(conn) as plain:
            cur = Explaining(plain)
            writer = BalanceWriter(Calendar(ZONE))
            for n in range(2000):
                day = 4 if n % 100 else 2  # a few into a day before the key's latest
                writer.post("acme", [Posting(f"reseller:{n * 7:06d}", "frozen", "CNY", 5)], n,
                            noon(day), "payment", f"ref{n}")
            writer.flush(cur)
            day_summary(cur, "acme", "2026-11-04", ZONE, day_bounds("2026-11-04", ZONE))
            page_of_lines(cur, "acme", "2026-11-04", 100, ("reseller:015000", "CNY", "frozen"))
            account_openings(cur, "acme", "reseller:000007", "2026-11-04")
        assert len(cur.plans) >= 5 and cur.writes
        for plan in cur.plans:
            assert "Seq Scan on proj_day_balances" not in plan, plan
            assert "proj_day_balances_pkey" in plan, plan
        for statement in cur.writes:
            assert "FROM proj_day_balances" not in statement, statement
    finally:
        conn.close()
