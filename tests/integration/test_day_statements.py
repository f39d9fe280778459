"""Day statements as a read model, paged, against the old computation (every line in one
statement, openings summed over all of history), kept here as it was: the read model alone
on random days, and a close recorded the old way (every line in its event) replayed,
rebuilt and opened from. The same read back through gRPC is in tests/e2e/test_day_statements.py.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from ledger.projections.balances import BalanceWriter
from ledger.projections.clock import Calendar, micros
from ledger.projections.db import Cursor, ProjectionDB
from ledger.projections.finance import day_bounds, statement_lines
from ledger.projections.reader import ReadModels
from ledger.projections.runner import ProjectionRunner
from ledger.projections.statements import (
    day_closed,
    day_summary,
    movements_digest,
    page_of_lines,
)

from ledger.application.ledger_app import LedgerApplication
from ledger.audit.export_file import read_export
from ledger.audit.replay import replay
from ledger.audit.signing import Signer
from ledger.domain.money import Posting
from ledger.domain.periods import DayStatement, PeriodBook, StatementLine, moved_lines_digest
from tests.audit_export import export_store
from tests.conftest import Clock
from tests.integration.test_audit_replay import close_day, settle_worked_example

ZONE = "Asia/Shanghai"


def reference_statement(cur: Cursor, platform: str, day: str) -> DayStatement:
    """The day's statement as it was computed before it was paged: every line at once, each
    opening the sum of every movement before the day."""
    start, end = day_bounds(day, ZONE)
    cur.execute(
        "SELECT account, currency, bucket, SUM(amount) FROM proj_movements WHERE platform = %s "
        "AND at < %s GROUP BY account, currency, bucket",
        (platform, start),
    )
    opening = {(a, c_, b): int(v) for a, c_, b, v in cur.fetchall()}
    cur.execute(
        "SELECT position, account, currency, bucket, amount, kind, ref FROM proj_movements "
        "WHERE platform = %s AND at >= %s AND at < %s ORDER BY position, account, bucket",
        (platform, start, end),
    )
    rows = cur.fetchall()
    by_kind: dict[tuple[str, str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for _, account, currency, bucket, amount, kind, _ in rows:
        by_kind[(account, currency, bucket)][kind] += int(amount)
    return DayStatement(
        day=day,
        timezone=ZONE,
        lines=tuple(statement_lines(opening, by_kind)),
        events=len(rows),
        first_position=int(rows[0][0]) if rows else 0,
        last_position=int(rows[-1][0]) if rows else 0,
        digest=movements_digest(rows),
    )


def reference(url: str, day: str) -> DayStatement:
    db = ProjectionDB(url)
    conn = db.connect()
    try:
        with db.transaction(conn, write=False) as cur:
            return reference_statement(cur, "acme", day)
    finally:
        conn.close()


def summary_of(statement: DayStatement) -> tuple[int, int, int, str]:
    return (statement.events, statement.first_position, statement.last_position, statement.digest)


def moved(statement: DayStatement) -> tuple[int, str]:
    lines = [x for x in statement.lines if x.movements]
    return len(lines), moved_lines_digest(lines)


def close_the_old_way(
    app: LedgerApplication, runner: ProjectionRunner, models: ReadModels, url: str, day: str
) -> DayStatement:
    """As a close recorded a day before statements were paged: every line in the event."""
    close_day(app, runner, models, day, draw=lambda d: reference(url, d))
    recorded = app.find(PeriodBook.create_id("acme")).closed[day]
    assert recorded.lines and recorded.lines_recorded
    return recorded


def test_an_old_format_close_with_its_lines_still_replays_and_the_days_after_open_from_it(
    app: LedgerApplication,
    store_url: str,
    clock: Clock,
    tmp_path: Path,
) -> None:
    """A day closed before statements were paged holds every line in its DayClosed event:
    the auditor's replay compares those lines, and the days after open where it closed,
    rebuilt read models included."""
    models = ReadModels(store_url)
    runner = ProjectionRunner(app, store_url)
    runner.setup()
    try:
        settle_worked_example(app, clock, runner, models)  # 2026-11-09
        clock.advance(days=1)
        recorded = close_the_old_way(app, runner, models, store_url, "2026-11-01")
        for n in range(2, 10):
            close_day(app, runner, models, f"2026-11-{n:02}")
        runner.catch_up()
        for day in ("2026-11-01", "2026-11-09"):
            assert (
                models.statement_lines("acme", day, 3) == list(reference(store_url, day).lines)[:3]
            )
        assert models.statement_lines("acme", "2026-11-01", 1000) == list(recorded.lines)
        before = [
            models.statement_lines("acme", "2026-11-09", 1000),
            models.day_statement("acme", "2026-11-09", ZONE),
        ]
        runner.reset()
        runner.catch_up()
        assert [
            models.statement_lines("acme", "2026-11-09", 1000),
            models.day_statement("acme", "2026-11-09", ZONE),
        ] == before
        assert before[0] == list(reference(store_url, "2026-11-09").lines)

        path = tmp_path / "acme.jsonl"
        export_store(app, path, Signer.generate())
        report = replay(read_export(path))
        assert report.ok, report.differences
        assert [d.day for d in report.days] == [f"2026-11-{n:02}" for n in range(1, 10)]
        assert report.days[0].lines == len(recorded.lines)
    finally:
        models.close()
        runner.stop()


ACCOUNTS = ("reseller:a", "reseller:b", "supplier:s", "platform")
BUCKETS = ("frozen", "available")
DAYS = 5


def noon(day: int) -> int:
    return micros(datetime(2026, 11, 1 + day, 4, 0, tzinfo=UTC) + timedelta(minutes=day))


movement = st.tuples(
    st.integers(0, DAYS - 1),
    st.sampled_from(ACCOUNTS),
    st.sampled_from(BUCKETS),
    st.sampled_from(("payment", "refund")),
    st.integers(-500, 500),
    st.integers(0, DAYS),
)


@settings(max_examples=40, deadline=None)
@given(moves=st.lists(movement, max_size=40), closed=st.integers(0, DAYS), size=st.integers(1, 4))
def test_paged_lines_equal_the_whole_statement_whichever_days_closed(
    moves: list[tuple[int, str, str, str, int, int]], closed: int, size: int
) -> None:
    """Movements booked into days 0–4 in any log order that respects the closes (a day
    closes after everything booked into it, days close in order, nothing lands in a closed
    day): every day's pages are the lines the old computation gives, and the lines that
    moved digest alike."""
    calendar = Calendar(ZONE)
    with tempfile.TemporaryDirectory() as folder:
        db = ProjectionDB(f"sqlite:///{folder}/models.db")
        conn = db.connect()
        db.create(conn)
        # A movement of day d is applied in phase p <= d: before the close of day p (phase
        # ``closed`` is after every close).
        phases: dict[int, list[tuple[int, str, str, str, int]]] = defaultdict(list)
        for day, account, bucket, kind, amount, phase in moves:
            phases[min(phase, day, closed)].append((day, account, bucket, kind, amount))
        position = 0
        for phase in range(closed + 1):
            with db.transaction(conn) as cur:
                writer = BalanceWriter(calendar)
                for day, account, bucket, kind, amount in phases[phase]:
                    position += 1
                    writer.post(
                        "acme",
                        [Posting(account, bucket, "CNY", amount)],
                        position,
                        noon(day),
                        kind,
                        f"ref{position}",
                    )
                writer.flush(cur)
                if phase < closed:
                    day_closed(cur, "acme", f"2026-11-{1 + phase:02}")
        with db.transaction(conn, write=False) as cur:
            for day in range(DAYS):
                name = f"2026-11-{1 + day:02}"
                expected = reference_statement(cur, "acme", name)
                found: list[StatementLine] = []
                while True:
                    page = page_of_lines(
                        cur,
                        "acme",
                        name,
                        size,
                        (found[-1].account, found[-1].currency, found[-1].bucket)
                        if found
                        else None,
                    )
                    found += page
                    if len(page) < size:
                        break
                assert found == list(expected.lines), name
                summary = day_summary(cur, "acme", name, ZONE, day_bounds(name, ZONE))
                assert summary_of(summary) == summary_of(expected)
                assert (summary.moved_lines, summary.moved_lines_digest) == moved(expected)
        conn.close()
