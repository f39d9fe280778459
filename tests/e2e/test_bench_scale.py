"""``python -m bench.scale`` at its smallest size: the platform is built through the API and
every operation the issue names is measured (figures are printed, never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bench.scale import LEVELS, random_tree

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = (
    "bringing the tree in, per member", "a day's sales by ImportOrders, per order",
    "a sale by the deepest member (level 19)", "GetTeamStats now, top leader",
    "GetTeamStats as of a past time, top leader", "GetTeamMember",
    "ListSubtree first page of 100", "ListSubtree page of 100 halfway through the walk",
    "walking the whole team 1,000 a page, per member",
    "CloseDay of the day of sales, read models caught up",
    "GetDayStatement of that day", "rebuild, per log entry",
)


def test_the_bench_tree_reaches_its_deepest_level_and_no_further() -> None:
    tree = random_tree(5_000)
    assert max(tree.depths) == LEVELS - 1
    assert all(tree.sponsors[n] < n for n in range(1, 5_000))  # sponsors come first
    assert all(tree.depths[n] == tree.depths[tree.sponsors[n]] + 1 for n in range(1, 5_000))


def test_scale_bench_measures_every_operation_at_its_smallest_size() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.scale", "--sizes", "10000"], cwd=ROOT,
                          capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = r"[\d,.]+ / [\d,.]+ / [\d,.]+"
    for operation in OPERATIONS:
        assert re.search(re.escape(operation) + r"\s+" + figures, done.stdout), operation
