"""Outages of the store, as the long-running loops see them: retried with a bounded backoff,
logged once when they start and once when they end.

A loop that retries every 50 ms and logs every failure wrote a traceback twenty times a second
for as long as the database was away, and a loop that gave up stopped the read models until
someone restarted the process. Every loop that talks to the store (the projection runner,
the position watcher, the health check, ``ledger project``) keeps one ``Outage``: it says how
long to wait before the next try, and logs the outage's start (with the error) and its end
(with how long it lasted), never each try.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from ledger import metrics

# The longest wait between two tries: the loops are back within this long of the store.
MAX_BACKOFF = 1.0
FIRST_BACKOFF = 0.05


class Outage:
    def __init__(self, what: str, *, meanwhile: str = "retrying until it works",
                 first: float = FIRST_BACKOFF, most: float = MAX_BACKOFF,
                 logger: Any = None, operation: str = "store") -> None:
        """``operation``: the label of its failures in ledger_store_errors_total."""
        assert 0 < first <= most
        self.what = what
        self.operation = operation
        self.meanwhile = meanwhile
        self.first = first
        self.most = most
        self.log = logger or structlog.get_logger(__name__)
        self.since: float | None = None  # monotonic time of the first failure; None: up
        self.tries = 0

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException) -> float:
        """Records a failed try; returns how long to wait before the next one."""
        self.tries += 1
        metrics.STORE_ERRORS.labels(self.operation).inc()
        if self.since is None:
            self.since = time.monotonic()
            self.log.warning(f"{self.what} failed; {self.meanwhile}",
                             error=f"{type(error).__name__}: {error}".strip())
        return min(self.most, self.first * 2 ** (self.tries - 1))

    def succeeded(self) -> None:
        """Records a try that worked: ends the outage, if there was one."""
        if self.since is not None:
            self.log.info(f"{self.what} works again",
                          outage_seconds=round(time.monotonic() - self.since, 3),
                          tries=self.tries)
        self.since = None
        self.tries = 0
