"""The read models' writers remember what they read between batches (projections/memory.py),
up to a bound; past it they let go of the oldest entries. Forgetting may only cost reads,
never change a row: on random trees larger than the bound, with moves and sales at every
depth, a writer whose memory holds five entries gives exactly the read models of one that
holds everything."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger.projections.memory import Memory
from ledger.projections.runner import ProjectionRunner

from ledger.application import commands as c
from ledger.bootstrap import build_application
from tests.conftest import Clock, example_store
from tests.integration.test_projection_runner import dump

trees = st.integers(20, 60).flatmap(lambda size: st.tuples(
    st.just(size),
    # each member's sponsor: a random earlier member (member 0 at the top)
    st.lists(st.floats(0, 1, exclude_max=True), min_size=size - 1, max_size=size - 1),
    # (member, new sponsor) moves, and (seller, amount) sales, interleaved after enrolment
    st.lists(st.tuples(st.integers(1, size - 1), st.integers(0, size - 1)), max_size=6),
    st.lists(st.tuples(st.integers(0, size - 1), st.integers(100, 50_000)), max_size=25),
))


def counted_trims(memory: Memory) -> list[int]:
    """The sizes at which ``memory`` let go of entries, as it does."""
    trims: list[int] = []
    trim = memory._trim

    def counted() -> None:
        trims.append(memory.size)
        trim()

    memory._trim = counted  # type: ignore[method-assign]
    return trims


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees, batch=st.integers(1, 12))
def test_a_memory_bounded_below_the_team_gives_the_read_models_of_an_unbounded_one(
    store_url: str, tmp_path: Path, tree: tuple[int, list[float], list[tuple[int, int]],
                                                list[tuple[int, int]]], batch: int,
) -> None:
    _, draws, moves, sales = tree
    url = example_store(store_url, tmp_path)
    clock = Clock()
    app = build_application(url, clock)
    shop, admin = c.Caller("acme", "shop"), c.Caller("acme", "ops")
    runners: list[ProjectionRunner] = []
    try:
        app.run_batch([(shop, c.EnrollReseller("e0", "m0", "", "", True))])
        for n, draw in enumerate(draws, start=1):
            clock.advance(hours=5)
            app.run_batch([(shop, c.EnrollReseller(f"e{n}", f"m{n}", f"m{int(draw * n)}", "",
                                                   False))])
        steps = [("move", m) for m in moves] + [("sale", s) for s in sales]
        steps.sort(key=lambda step: hash(step) % 97)  # interleaved, the same for each run
        for n, (kind, (a, b)) in enumerate(steps):
            clock.advance(hours=7)
            if kind == "move":  # refused when it would make a cycle: then it writes nothing
                app.run_batch([(admin, c.MoveReseller(f"mv{n}", f"m{a}", f"m{b}", "reorg"))])
            else:
                oid = f"O{n}"
                app.run_batch([(shop, c.PlaceOrder(f"{oid}p", oid, f"c{n}", f"m{a}", "CNY",
                                                   (c.NewLine("x", "", 1, b, b // 2, "S1"),)))])
                app.run_batch([(shop, c.PayOrder(f"{oid}y", oid, "w", b))])
        dumps = []
        for limit in (5, 1_000_000):
            runner = ProjectionRunner(app, url, batch_size=batch, memory_limit=limit)
            runners.append(runner)
            runner.setup()
            runner.reset()
            trims = counted_trims(runner._memory)
            runner.catch_up()
            if limit == 5:  # it did let go of what it held, again and again
                assert len(trims) > 1 and max(trims) > 5
            else:
                assert not trims
            dumps.append(dump(runner))
        assert dumps[0] == dumps[1]
        assert dumps[0]["proj_resellers"]  # the tree is there to compare
    finally:
        for runner in runners:
            runner.stop()
        app.close()
