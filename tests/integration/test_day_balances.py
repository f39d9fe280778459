"""Opening balances from each key's running balance per day: before any close they equal the
plain sum of history, in whatever order the days' moves arrive, and each key is a probe of the
primary key whatever the planner believes.

The running balance as a pure function is in tests/unit/test_day_balances.py; a close after
a long history, through gRPC, in tests/e2e/test_day_balances.py."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger.projections.balances import BalanceWriter
from ledger.projections.clock import Calendar
from ledger.projections.db import Cursor, ProjectionDB
from ledger.projections.finance import day_bounds
from ledger.projections.statements import (
    account_openings,
    day_summary,
    page_of_lines,
)
from psycopg import sql

from ledger.domain.money import Posting
from ledger.domain.periods import StatementLine
from tests.conftest import POSTGRES_URL, drop_schema, example_store
from tests.integration.test_day_statements import (
    ACCOUNTS,
    ZONE,
    moved,
    noon,
    reference_statement,
    summary_of,
)
from tests.integration.test_day_statements import movement as five_day_movement

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
