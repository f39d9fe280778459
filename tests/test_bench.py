"""The benchmark's short mode runs to the end (figures are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_short_benchmark_completes() -> None:
    done = subprocess.run([sys.executable, "-m", "bench"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for expected in ("ledger, 64 in flight", "baseline A (do-nothing), 64 in flight",
                     "baseline B", "bulk import", "projection rebuild", "peak RSS",
                     "ratio ledger/baseline A", "ratio ledger/baseline B", "audit verify",
                     "request logs + metrics on/off"):
        assert expected in done.stdout
