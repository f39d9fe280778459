"""ruff is part of the test suite, so a lint error fails CI like any broken rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_is_clean() -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check", "."], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_domain_knows_nothing_of_grpc_or_sql() -> None:
    forbidden = ("import grpc", "from grpc", "psycopg", "sqlite3", "ledger.v1", "ledger.api")
    for path in (ROOT / "ledger" / "domain").glob("*.py"):
        text = path.read_text()
        assert not [f for f in forbidden if f in text], path
