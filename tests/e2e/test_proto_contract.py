"""The API contract: buf lint is clean and the committed generated code is not stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_buf_lint_passes() -> None:
    done = subprocess.run([str(BIN / "buf"), "lint"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "proto" / "generate.py"), "--out",
                           str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    fresh = {p.name: p.read_bytes() for p in (tmp_path / "ledger" / "v1").iterdir()}
    committed = {p.name: p.read_bytes() for p in (ROOT / "ledger" / "v1").iterdir()
                 if p.is_file()}
    assert fresh.keys() == committed.keys()
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"run `python proto/generate.py`: stale {stale}"
