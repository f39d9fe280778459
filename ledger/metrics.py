"""Prometheus metrics: what a server did, scraped from LEDGER_METRICS_LISTEN (off when unset).

The metrics are prometheus-client's, defined once here and updated where things happen:
calls (``api/calls.py``), group commits (``group_commit.py``), appended events
(``ledger_app.save_staged``), the store's failures (``outages.Outage``), the read models'
position (the health probe). Payouts in flight are counted from the read models when
scraped.

With LEDGER_WORKERS > 1 every server process writes its values to files in one directory
made for the run (prometheus-client's multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR``, set by
``ledger serve`` before this module is first imported, and inherited by the workers), and
the first process's endpoint adds them up, so one scrape shows all of them. Gauges of the
shared store (log head, the read models' position and lag) show the most recently written
value of any process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# Whether calls are counted and timed: set when this process serves metrics (or is a worker
# of one that does). The per-batch and per-failure metrics below are always kept: they cost
# nothing a call would notice.
on = False

# Seconds: a read is about a millisecond, a write a few, a loaded batch's waiters tens.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

REQUESTS = Counter(
    "ledger_requests",
    "Calls answered, by service, method and status code",
    ["service", "method", "code"],
)
REQUEST_SECONDS = Histogram(
    "ledger_request_duration_seconds",
    "Seconds from a call's arrival to its answer",
    ["service", "method"],
    buckets=LATENCY_BUCKETS,
)
BATCH_COMMANDS = Histogram(
    "ledger_commit_batch_commands",
    "Commands per group-commit batch (one transaction)",
    buckets=BATCH_BUCKETS,
)
COMMIT_SECONDS = Histogram(
    "ledger_commit_duration_seconds",
    "Seconds a group-commit batch took, deciding and committing",
    buckets=LATENCY_BUCKETS,
)
EVENTS_APPENDED = Counter(
    "ledger_events_appended", "Events appended to the log"
)
STORE_ERRORS = Counter(
    "ledger_store_errors", "Failed tries to reach the store, by what was being done", ["operation"]
)
LOG_POSITION = Gauge(
    "ledger_log_position",
    "The event log's head, as the health probe read it",
    multiprocess_mode="mostrecent",
)
PROJECTION_POSITION = Gauge(
    "ledger_projection_position",
    "Log position the read models have applied",
    multiprocess_mode="mostrecent",
)
PROJECTION_LAG = Gauge(
    "ledger_projection_lag",
    "Log entries written but not yet applied to the read models",
    multiprocess_mode="mostrecent",
)


# (service, method, code) -> its counter and histogram children: labels() takes a lock and
# builds a key each time, a few microseconds a call that a dict lookup saves.
_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def observe_call(service: str, method: str, code: str, seconds: float) -> None:
    key = (service, method, code)
    children = _children.get(key)
    if children is None:
        children = _children[key] = (
            REQUESTS.labels(service, method, code),
            REQUEST_SECONDS.labels(service, method),
        )
    children[0].inc()
    children[1].observe(seconds)


def positions(head: int, processed: int) -> None:
    LOG_POSITION.set(head)
    PROJECTION_POSITION.set(processed)
    PROJECTION_LAG.set(max(0, head - processed))


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROCESS_DIR))


class PayoutsInFlight(Collector):
    """Payouts requested or approved and not yet paid, failed or rejected, per platform and
    state, counted from the read models at each scrape."""

    def __init__(self, count: Callable[[], list[tuple[str, str, int]]]) -> None:
        self.count = count

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "ledger_payouts_in_flight",
            "Payouts waiting for finance, by platform and state",
            labels=["platform", "state"],
        )
        try:
            rows = self.count()
        except Exception:  # the store away: the scrape still answers, the error is counted
            STORE_ERRORS.labels("metrics").inc()
            rows = []
        for platform, state, payouts in rows:
            family.add_metric([platform, state], payouts)
        yield family


class _ThisProcess(Collector):
    """The default registry's metrics (this process's, and the Python runtime's)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


class MetricsEndpoint:
    """``/metrics`` over HTTP on ``host:port``, in a thread of its own."""

    def __init__(self, listen: str, payouts: Callable[[], list[tuple[str, str, int]]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        if multiprocess():
            MultiProcessCollector(self.registry)
        else:
            self.registry.register(_ThisProcess())
        self.registry.register(PayoutsInFlight(payouts))
        host, _, port = listen.rpartition(":")
        self.host = host.strip("[]") or "0.0.0.0"
        self._server: WSGIServer | None = None
        self._thread: Thread | None = None
        self._port = int(port)

    def start(self) -> int:
        """Starts serving; returns the bound port (for a port of 0)."""
        self._server, self._thread = start_http_server(self._port, self.host, self.registry)
        return int(self._server.server_port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A scrape's samples by name and labels (for tests and the bench)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out
