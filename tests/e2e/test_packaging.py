"""What a user installs: the wheel puts everything under the one top-level package ``ledger``
(the read models and the clients as ``ledger.projections`` and ``ledger.clients``), so that it
cannot collide with another distribution's ``projections`` or ``clients``."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_installs_one_top_level_package_holding_every_module(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True,
                   timeout=240)
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(
        (".dist-info", ".data"))}
    assert tops == {"ledger"}
    for folder in ("ledger", "projections", "clients"):  # every module of the repository's
        for module in (ROOT / folder).rglob("*.py"):
            installed = module.relative_to(ROOT).as_posix()
            if folder != "ledger":
                installed = f"ledger/{installed}"
            assert installed in names, installed


def test_the_read_models_and_clients_refuse_to_load_under_a_top_level_name() -> None:
    for name in ("projections", "clients"):
        done = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert f"import ledger.{name}, not {name}" in done.stderr
