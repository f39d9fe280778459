"""`ledger project` and `ledger projections rebuild|status`: the read models kept current
from a process of their own, rebuilt from the whole log, and how far behind the log they are."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import structlog

from ledger.config import ConfigError, Settings
from ledger.runtime import tune_gc

if TYPE_CHECKING:
    from ledger.application.ledger_app import LedgerApplication
    from ledger.projections.runner import ProjectionRunner


def projection_runner(settings: Settings, batch_size: int | None = None
                      ) -> tuple[LedgerApplication, ProjectionRunner]:
    """The application over the configured store, and a runner for its read models."""
    from ledger.bootstrap import build_application
    from ledger.projections.clock import Calendar
    from ledger.projections.runner import ProjectionRunner

    app = build_application(settings.database_url, timezone=settings.timezone,
                            cache_size=settings.aggregate_cache)
    return app, ProjectionRunner(app, settings.database_url,
                                 memory_limit=settings.projection_cache,
                                 calendar=Calendar(settings.timezone),
                                 batch_size=batch_size or settings.projection_batch)


def project(settings: Settings) -> int:
    """Keeps the read models current from its own process (LEDGER_PROJECTIONS=external on
    the servers), until SIGINT/SIGTERM. A lost database is waited out (the runner retries
    with a bounded backoff and logs the outage once), never a reason to exit."""
    from ledger.adapters.append_only import require_guards

    app, runner = projection_runner(settings)
    try:
        require_guards(app)  # the read models of a history that can be rewritten are no use
    except ConfigError:
        app.close()
        raise
    signal.signal(signal.SIGTERM, lambda *_: runner.interrupt())
    signal.signal(signal.SIGINT, lambda *_: runner.interrupt())
    runner.setup()
    tune_gc()
    log = structlog.get_logger("ledger.project")
    log.info("projecting", position=runner.position, head=runner.log_head())
    last_report = time.monotonic()

    def report_lag() -> None:
        nonlocal last_report
        if time.monotonic() - last_report > LAG_REPORT_INTERVAL:
            last_report = time.monotonic()
            head = runner.log_head()
            log.info("projection lag", position=runner.position, head=head,
                     lag=head - runner.position)

    # Other servers' commits do not wake this process: it polls for them.
    runner.follow(poll_interval=0.05, after_pass=report_lag)
    runner.stop()
    app.close()
    log.info("projection stopped", position=runner.position)
    return 0


LAG_REPORT_INTERVAL = 10.0


def rebuild(settings: Settings) -> int:
    """Drops every read model and rebuilds it from the whole log, showing progress.

    In larger transactions than a live runner's (LEDGER_REBUILD_BATCH): nobody waits on a
    rebuild's commits, and each batch folds more postings into one write per balance."""
    app, runner = projection_runner(settings, settings.rebuild_batch)
    head = max(runner.log_head(), 1)
    runner.reset(bulk=True)
    started = time.monotonic()
    with terminal_progress("rebuilding read models", head) as advance:
        applied = runner.catch_up(lambda done: advance(runner.position))
    runner.finish_bulk()
    elapsed = time.monotonic() - started
    # Counted in log positions, each an event (bar any a failed write left unused), though
    # only the kinds the read models use are read and applied.
    print(f"rebuilt read models from {applied} events in {elapsed:.2f}s "
          f"({applied / max(elapsed, 1e-9):,.0f} events/s), position {runner.position}; "
          f"{runner.applied} of them of the kinds the read models use")
    runner.stop()
    app.close()
    return 0


@contextmanager
def terminal_progress(what: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on standard error when it is a terminal (rich's, redrawn in place);
    into a file or a pipe nothing at all, so a log keeps no half-drawn bars. Yields the
    function that moves it to a count out of ``total``."""
    if not sys.stderr.isatty():
        yield lambda done: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda done: bar.update(task, completed=done)


def status(settings: Settings) -> int:
    """Prints the log head, the read models' position and the lag between them."""
    from ledger.bootstrap import build_application
    from ledger.projections.reader import ReadModels

    app = build_application(settings.database_url)
    models = ReadModels(settings.database_url)
    head = app.log_position()
    try:
        processed = models.processed_position()
    except Exception:  # no read models yet
        processed = 0
    print(json.dumps({"log_position": head, "processed_position": processed,
                      "lag": head - processed}))
    models.close()
    app.close()
    return 0
