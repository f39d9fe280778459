"""Team counts read as of any time and any log position equal the sum of their changes.

The counts are kept as changes and as sums per nested slot of time (team_counts.py); a read
adds a few dozen slots and subtracts what was recorded after the position asked for. These
properties check that arithmetic against the plain sum of every change, on random histories
whose times straddle minute, hour, day and longer slot edges, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger.projections.clock import END_OF_TIME
from ledger.projections.db import ProjectionDB
from ledger.projections.team import DAY
from ledger.projections.team_counts import TEAM_SIZE, WIDTHS, CountWriter, count

from tests.conftest import POSTGRES_URL

# Times near slot edges: a base, plus whole slots of each width, plus a few microseconds.
EDGE = 20_000 * DAY
times = st.builds(
    lambda n, width, jitter: EDGE + n * width + jitter,
    st.integers(-3, 3), st.sampled_from(WIDTHS), st.integers(-2, 2))
changes = st.lists(st.tuples(times, st.integers(-5, 5).filter(bool)), max_size=40)


@pytest.fixture
def models(store_url: str) -> Iterator[tuple[ProjectionDB, object]]:
    if "postgresql" in store_url:
        schema = store_url.rsplit("schema=", 1)[1]
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    db = ProjectionDB(store_url)
    conn = db.connect()
    db.create(conn)
    yield db, conn
    conn.close()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=changes, reads=st.lists(st.tuples(times, st.integers(0, 45)), max_size=8),
       batch=st.integers(1, 7))
def test_a_count_as_of_any_time_and_position_is_the_sum_of_its_changes(
    models: tuple[ProjectionDB, object], history: list[tuple[int, int]],
    reads: list[tuple[int, int]], batch: int,
) -> None:
    db, conn = models
    with db.transaction(conn) as cur:  # each example starts empty
        cur.execute("DELETE FROM proj_team_counts")
        cur.execute("DELETE FROM proj_team_count_changes")
    for start in range(0, len(history), batch):  # written in batches, as the runner does
        writer = CountWriter()
        for position, (at, delta) in enumerate(history[start:start + batch], start=start):
            writer.add("p", "leader", TEAM_SIZE, "", at, position, delta)
        with db.transaction(conn) as cur:
            writer.flush(cur)
    with db.transaction(conn, write=False) as cur:
        assert count(cur, "p", "leader", TEAM_SIZE, "") == sum(d for _, d in history)
        for at, position in [*reads, (END_OF_TIME, 10), (EDGE, END_OF_TIME)]:
            expected = sum(delta for p, (when, delta) in enumerate(history)
                           if when <= at and p <= position)
            assert count(cur, "p", "leader", TEAM_SIZE, "", at, position) == expected
