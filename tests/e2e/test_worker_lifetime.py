"""A worker of LEDGER_WORKERS does not outlive its first process, however that one dies."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import Keys
from tests.processes import Started, serve_workers, wait_until


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split(")")[-1].split()[0] != "Z"


@pytest.mark.postgres
def test_workers_end_when_the_first_process_is_killed(postgres_url: str, tmp_path: Path) -> None:
    started = Started()
    try:
        server, _ = serve_workers(started, tmp_path, postgres_url, Keys())
        assert server.popen is not None
        pids = {
            json.loads(line)["pid"]
            for line in server.output.splitlines()
            if '"ledger serving"' in line
        }
        [worker] = pids - {server.popen.pid}
        server.kill()  # SIGKILL: the first process stops nothing itself
        wait_until(lambda: not alive(worker), "the worker to end", 60)
    finally:
        started.kill_all()
