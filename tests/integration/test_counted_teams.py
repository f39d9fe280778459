"""A leader's enrolments are counted from its spans while its team is small, and kept as count
changes and slot sums once it has had team_tree.COUNTED_FROM spans (projections/team_tree.py).
Which way a leader is counted may change only what a read costs, never what it says: on random
trees brought in with their join dates out of log order, with moves and sales, every leader's
team numbers as of many times and log positions read the same with the switch after three
spans as with a switch never reached; and the batches the log is cut into change no row."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger.projections import team_tree
from ledger.projections.clock import Calendar, micros
from ledger.projections.reader import ReadModels
from ledger.projections.runner import ProjectionRunner

from ledger.application import commands as c
from ledger.application.ledger_app import LedgerApplication
from ledger.bootstrap import build_application
from tests.conftest import Clock, example_store
from tests.integration.test_projection_runner import dump

START = datetime(2026, 1, 1, tzinfo=UTC)
MONTHS = ("2026-01", "2026-02", "2026-03", "2026-04")

trees = st.integers(8, 30).flatmap(lambda size: st.tuples(
    st.just(size),
    # each member's sponsor (a random earlier member), and how long after it they joined
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 40 * 24)),
             min_size=size - 1, max_size=size - 1),
    st.lists(st.tuples(st.integers(1, size - 1), st.integers(0, size - 1)), max_size=4),
    st.lists(st.tuples(st.integers(0, size - 1), st.integers(100, 50_000)), max_size=8),
))


@contextmanager
def counted_from(spans: int) -> Iterator[None]:
    saved = team_tree.COUNTED_FROM
    team_tree.COUNTED_FROM = spans
    try:
        yield
    finally:
        team_tree.COUNTED_FROM = saved


def record(app: LedgerApplication, clock: Clock, size: int, draws: list[tuple[float, int]],
           moves: list[tuple[int, int]], sales: list[tuple[int, int]]) -> None:
    """Members brought in with past join dates (each after its sponsor's, in log order not
    in time order), then moves and sales interleaved."""
    shop, admin = c.Caller("acme", "shop"), c.Caller("acme", "ops")
    joined = [START]
    batch = [(shop, c.ImportReseller("e0", "m0", "", "", True, START))]
    for n, (draw, hours) in enumerate(draws, start=1):
        sponsor = int(draw * n)
        joined.append(joined[sponsor] + timedelta(hours=hours))
        batch.append((shop, c.ImportReseller(f"e{n}", f"m{n}", f"m{sponsor}", "", False,
                                             joined[n])))
    for result in app.run_batch(batch):
        assert not isinstance(result, BaseException), result
    steps = [("move", m) for m in moves] + [("sale", s) for s in sales]
    steps.sort(key=lambda step: hash(step) % 97)
    for n, (kind, (a, b)) in enumerate(steps):
        clock.advance(hours=9)
        if kind == "move":  # refused when it would make a cycle: then it writes nothing
            app.run_batch([(admin, c.MoveReseller(f"mv{n}", f"m{a}", f"m{b}", "reorg"))])
        else:
            oid = f"O{n}"
            app.run_batch([
                (shop, c.PlaceOrder(f"{oid}p", oid, f"c{n}", f"m{a}", "CNY",
                                    (c.NewLine("x", "", 1, b, b // 2, "S1"),))),
                (shop, c.PayOrder(f"{oid}y", oid, "w", b))])


def numbers(models: ReadModels, size: int, last_position: int) -> dict[tuple, tuple]:
    """Every leader's month numbers as of several times and log positions."""
    out = {}
    times = [micros(START + timedelta(days=d)) for d in (0, 3, 17, 40, 75, 400)]
    positions = sorted({1, size // 2, size, last_position})
    for n in range(size):
        for month in MONTHS:
            for at in times:
                for position in positions:
                    s = models.team_stats("acme", f"m{n}", month, at, position)
                    out[(n, month, at, position)] = (s.new_members, s.members_at_start,
                                                     s.active_members)
    return out


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees, batch=st.integers(1, 9))
def test_counting_a_team_from_spans_or_from_slots_reads_the_same_numbers(
    store_url: str, tmp_path: Path,
    tree: tuple[int, list[tuple[float, int]], list[tuple[int, int]], list[tuple[int, int]]],
    batch: int,
) -> None:
    size, draws, moves, sales = tree
    url = example_store(store_url, tmp_path)
    clock = Clock(START + timedelta(days=500))
    app = build_application(url, clock)
    runners: list[ProjectionRunner] = []
    models = ReadModels(url, Calendar())
    try:
        record(app, clock, size, draws, moves, sales)
        last = app.recorder.max_notification_id()
        seen, dumps = [], []
        for spans, batch_size in ((3, batch), (3, 1000), (10**9, batch)):
            with counted_from(spans):
                runner = ProjectionRunner(app, url, batch_size=batch_size)
                runners.append(runner)
                runner.setup()
                runner.reset()
                runner.catch_up()
                with runner.db.transaction(runner.connection(), write=False) as cur:
                    cur.execute("SELECT COUNT(*) FROM proj_resellers WHERE counted = 1")
                    counted = cur.fetchone()[0]
                assert (counted > 0) == (spans == 3)  # m0 has size - 1 >= 7 spans
                seen.append(numbers(models, size, last))
                dumps.append(dump(runner))
        assert seen[0] == seen[2]
        assert seen[1] == seen[2]
        assert dumps[0] == dumps[1]  # cut into batches or not, the same rows
    finally:
        models.close()
        for runner in runners:
            runner.stop()
        app.close()
