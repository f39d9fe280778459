"""A real `ledger project` process, killed while it works, leaves read models that another
runner finishes to exactly what a rebuild makes. The runner's own guarantees, in one
process, are in tests/integration/test_projection_runner.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ledger.projections.runner import ProjectionRunner

from ledger.bootstrap import build_application
from tests.conftest import Clock
from tests.integration.test_event_log import balances_from_log
from tests.integration.test_projection_runner import dump, projected_balances, seed

LEDGER = str(Path(sys.executable).parent / "ledger")


def test_killed_projector_resumes_to_exactly_what_a_rebuild_makes(
    store_url: str, tmp_path: Path
) -> None:
    """A real `ledger project` process, SIGKILLed while it works through the log: what
    the read models hold once another runner finishes equals a rebuild from the log, table
    by table, and the balances equal the postings."""
    app = build_application(store_url, Clock())
    seed(app, orders=400)
    head = app.log_position()
    env = {**os.environ, "LEDGER_DATABASE_URL": store_url, "LEDGER_PROJECTION_BATCH": "7",
           "LEDGER_LOG_LEVEL": "warning"}
    watcher = ProjectionRunner(app, store_url)
    watcher.setup()
    kills = 0
    for _ in range(3):
        worker = subprocess.Popen([LEDGER, "project"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        start = watcher.processed_position()
        deadline = time.monotonic() + 60
        while watcher.processed_position() < min(start + 30, head) and \
                time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        kills += 1
        if watcher.processed_position() >= head:
            break
    assert kills >= 1
    stopped_at = watcher.processed_position()
    assert stopped_at > 0
    watcher.catch_up()
    assert watcher.processed_position() == head
    assert projected_balances(watcher) == balances_from_log(app)
    resumed = dump(watcher)
    watcher.reset(bulk=True)
    watcher.catch_up()
    watcher.finish_bulk()
    assert dump(watcher) == resumed
    watcher.stop()
    app.close()
