"""Prometheus metrics, scraped from a served ledger's LEDGER_METRICS_LISTEN before and after
calls: counters and histograms move by exactly the calls made, across worker processes."""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger.clients.sdk import LedgerClient, idempotency_key

from ledger import metrics
from ledger.api.server import LedgerServer, ServerThread
from ledger.config import ConfigError, Settings
from ledger.outages import Outage
from ledger.v1 import finance_pb2, report_pb2, storefront_pb2
from tests.conftest import Clock, Keys, Running
from tests.e2e.test_settlement_payouts import Books, sell, settle
from tests.helpers import refused, team
from tests.processes import Started, free_port, serve_workers, wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(address: str) -> Samples:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as reply:
        return metrics.samples(reply.read().decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def head(shop: LedgerClient) -> int:
    return shop.report.GetProjectionStatus(report_pb2.GetProjectionStatusRequest()).log_position


@pytest.mark.postgres
def test_one_scrape_counts_every_workers_calls(postgres_url: str, tmp_path: Path) -> None:
    keys = Keys()
    metrics_address = f"127.0.0.1:{free_port()}"
    started = Started()
    try:
        server, address = serve_workers(
            started,
            tmp_path,
            postgres_url,
            keys,
            LEDGER_METRICS_LISTEN=metrics_address,
            LEDGER_HEALTH_INTERVAL="0.2",
        )
        with LedgerClient(address, keys.shop_a) as shop:
            log_before = head(shop)
        before = scrape(metrics_address)

        # Each call on a connection of its own, so that the kernel hands them to both
        # processes; until the request lines show both have answered some.
        writes = reads = 0
        ours: set[str] = set()

        def pids() -> set[int]:
            lines = [json.loads(x) for x in server.output.splitlines() if x.startswith("{")]
            return {x["pid"] for x in lines if x.get("request_id") in ours}

        while writes < 6 or (len(pids()) < 2 and writes < 60):
            with LedgerClient(address, keys.shop_a) as shop:
                writes += 1
                shop.storefront.EnrollReseller(
                    storefront_pb2.EnrollResellerRequest(
                        idempotency_key=f"enroll-{writes}",
                        reseller_id=f"r{writes}",
                        without_sponsor=True,
                    ),
                    metadata=(("x-request-id", f"w{writes}"),),
                )
                ours.add(f"w{writes}")
            with LedgerClient(address, keys.shop_a) as shop:
                reads += 1
                metadata = (("x-request-id", f"r{reads}"),)
                refused(
                    lambda m=metadata: shop.storefront.GetOrder(  # type: ignore[misc]
                        storefront_pb2.GetOrderRequest(order_id="none"), metadata=m
                    )
                )
                ours.add(f"r{reads}")
        assert len(pids()) == 2, "both server processes answered calls"
        after = scrape(metrics_address)
        with LedgerClient(address, keys.shop_a) as shop:
            log_after = head(shop)

        def probed() -> Samples | None:
            now = scrape(metrics_address)
            return now if value(now, "ledger_log_position") >= log_after else None

        final = wait_until(probed, "the probe to see the log head")
    finally:
        server.stop()  # SIGTERM: the first process stops its worker (SIGKILL would not)
        started.kill_all()

    enroll = {"service": "StorefrontService", "method": "EnrollReseller"}
    get = {"service": "StorefrontService", "method": "GetOrder"}
    assert moved(before, after, "ledger_requests_total", **enroll, code="OK") == writes
    assert moved(before, after, "ledger_requests_total", **get, code="NOT_FOUND") == reads
    assert moved(before, after, "ledger_request_duration_seconds_count", **enroll) == writes
    assert (
        moved(before, after, "ledger_request_duration_seconds_bucket", **enroll, le="+Inf")
        == writes
    )
    assert moved(before, after, "ledger_request_duration_seconds_count", **get) == reads
    assert moved(before, after, "ledger_request_duration_seconds_sum", **enroll) > 0
    # Every write went through a group commit: the batches' sizes add up to the writes.
    assert moved(before, after, "ledger_commit_batch_commands_sum") == writes
    assert 1 <= moved(before, after, "ledger_commit_batch_commands_count") <= writes
    assert moved(before, after, "ledger_commit_duration_seconds_count") == moved(
        before, after, "ledger_commit_batch_commands_count"
    )
    # Every log position the calls took is an event appended by one of the processes.
    assert moved(before, after, "ledger_events_appended_total") == log_after - log_before
    assert value(final, "ledger_log_position") == log_after
    assert value(final, "ledger_projection_lag") >= 0


@pytest.fixture
def metered(store_url: str, clock: Clock, tmp_path: Path) -> Iterator[tuple[Running, str]]:
    """A served ledger (one process) with its metrics on a free port; (it, that address)."""
    keys = Keys()
    settings = Settings(
        database_url=store_url,
        listen="127.0.0.1:0",
        metrics_listen="127.0.0.1:0",
        audit_key_file=str(tmp_path / "audit-signing-key.pem"),
    )
    server = LedgerServer(settings, keys.ring(), clock=clock)
    with ServerThread(server) as thread:
        yield Running(thread.target, keys, server), f"127.0.0.1:{server.metrics_port}"


def test_payouts_in_flight_by_state(metered: tuple[Running, str], clock: Clock) -> None:
    running, address = metered
    with (
        running.client(running.keys.shop_a) as shop,
        running.client(running.keys.admin) as admin,
        running.client(running.keys.finance) as fin,
    ):
        books = Books(shop)
        team(shop)
        sell(shop, books, "O1")
        clock.advance(days=8)
        settle(admin, books)
        payouts = [
            fin.finance.RequestPayout(
                finance_pb2.RequestPayoutRequest(
                    idempotency_key=idempotency_key(),
                    account="supplier:S1",
                    currency="CNY",
                    amount=1000,
                )
            ).payout.payout_id
            for _ in range(3)
        ]
        fin.finance.ApprovePayout(
            finance_pb2.ApprovePayoutRequest(
                idempotency_key=idempotency_key(), payout_id=payouts[0]
            )
        )
        books.saw(
            fin.finance.RejectPayout(
                finance_pb2.RejectPayoutRequest(
                    idempotency_key=idempotency_key(), payout_id=payouts[1], reason="no"
                )
            ).receipt
        )
        books.of("supplier:S1")  # the read models have every write

    in_flight = scrape(address)
    assert value(in_flight, "ledger_payouts_in_flight", platform="acme", state="requested") == 1
    assert value(in_flight, "ledger_payouts_in_flight", platform="acme", state="approved") == 1
    assert not any(
        name == "ledger_payouts_in_flight" and ("state", "rejected") in labels
        for name, labels in in_flight
    )


def test_a_failed_try_at_the_store_is_counted_under_its_operation() -> None:
    before = metrics.STORE_ERRORS.labels("test-operation")._value.get()
    outage = Outage("testing", operation="test-operation")
    outage.failed(ConnectionError("gone"))
    outage.failed(ConnectionError("still gone"))
    outage.succeeded()
    assert metrics.STORE_ERRORS.labels("test-operation")._value.get() - before == 2


def test_metrics_address_is_checked() -> None:
    assert Settings.from_env({}).metrics_listen == ""
    assert (
        Settings.from_env({"LEDGER_METRICS_LISTEN": "0.0.0.0:9464"}).metrics_listen
        == "0.0.0.0:9464"
    )
    with pytest.raises(ConfigError, match="LEDGER_METRICS_LISTEN='9464'"):
        Settings.from_env({"LEDGER_METRICS_LISTEN": "9464"})


def test_a_metrics_port_in_use_stops_the_server_naming_the_setting(tmp_path: Path) -> None:
    import subprocess
    import sys

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = {
            **os.environ,
            "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
            "LEDGER_LISTEN": "127.0.0.1:0",
            "LEDGER_METRICS_LISTEN": f"127.0.0.1:{port}",
            "LEDGER_AUDIT_KEY_FILE": str(tmp_path / "audit.pem"),
        }
        done = subprocess.run(
            [str(Path(sys.executable).parent / "ledger"), "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"ledger: LEDGER_METRICS_LISTEN=127.0.0.1:{port}: cannot listen there "
        "(Address already in use)"
    )
