"""The benchmark's short mode runs to the end (figures are printed, never asserted), and
ends with the table of issue 18's targets, every row with its figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bench.targets import TITLE

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("unary at 64 in flight", "unary at 64 in flight, paired rounds",
           "server CPU per command at 64 in flight", "p99 at 64 in flight", "bulk import",
           "rebuild", "server RSS after 1,000,000 events")
NUMBER = re.compile(r"\d[\d,]*(\.\d+)?")


def target_rows(output: str) -> dict[str, list[str]]:
    """The targets table's rows by target name: [ledger, reference, ratio, bound, met]."""
    table = output.split(f"{TITLE}:\n", 1)[1].splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table
             if line.startswith("| ")]
    return {row[0].split(" (")[0]: row[1:] for row in cells[1:]}


def test_short_benchmark_completes_with_every_target_measured() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--rss-events", "3000"], cwd=ROOT,
                          capture_output=True, text=True, timeout=360)
    assert done.returncode == 0, done.stdout + done.stderr
    for expected in ("ledger, 64 in flight", "baseline A (do-nothing), 64 in flight",
                     "baseline B", "bulk import", "projection rebuild", "rebuild ceiling",
                     "peak RSS", "ratio ledger/baseline A", "ratio ledger/baseline B",
                     "audit verify", "request logs + metrics on/off"):
        assert expected in done.stdout
    rows = target_rows(done.stdout)
    assert set(rows) == set(TARGETS), rows
    for name, (ledger, reference, ratio, bound, met) in rows.items():
        assert NUMBER.search(ledger) and NUMBER.search(reference), (name, ledger, reference)
        assert float(ratio) >= 0, (name, ratio)
        assert re.fullmatch(r"[≥≤] \d+\.\d\d", bound), (name, bound)
        assert re.match(r"(not )?met\b", met), (name, met)
    # The memory figure is the one of the run asked for: a fresh log of at least 3,000 entries.
    alone = re.search(r"bulk import alone \(--rss-events\): ([\d,]+) MB after ([\d,]+) events",
                      done.stdout)
    assert alone, done.stdout
    mb, logged = alone.groups()
    assert int(logged.replace(",", "")) >= 3000
    memory = rows["server RSS after 1,000,000 events"]
    assert memory[0] == f"{mb} MB after {logged} events"
    assert f"at {logged} events only" in memory[4]
