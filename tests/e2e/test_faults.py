"""The read side under database faults, with real processes and the real PostgreSQL.

A server or projector whose connections are terminated (as a restart or failover of
PostgreSQL does) or whose database stops answering altogether (a TCP proxy cut between them)
must answer UNAVAILABLE while it cannot work, never INTERNAL or a stale position, say so in
its health, and come back by itself, with no restart, as soon as the database does.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from ledger.clients.sdk import LedgerClient

from ledger.v1 import report_pb2
from tests.conftest import POSTGRES_URL, Keys
from tests.helpers import enroll, pay, place
from tests.processes import (
    LedgerProcess,
    Started,
    connections_of,
    project,
    serve,
    terminate_connections,
    wait_until,
)
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres

# The server probes its health this often in these tests (LEDGER_HEALTH_INTERVAL).
HEALTH_INTERVAL = "0.2"
# From the database's return to every read working again: the design's bound is the
# runner's longest backoff (1 s) plus a health probe; this leaves room for a busy machine.
RECOVERY = 5.0
RETRYABLE = {grpc.StatusCode.UNAVAILABLE}


class Calls:
    """Calls made during a fault, with every status they met, to check that each failure
    was a retryable UNAVAILABLE and never INTERNAL or UNKNOWN."""

    def __init__(self) -> None:
        self.codes: Counter[grpc.StatusCode] = Counter()

    def until_ok(self, call: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
        def attempt() -> Any:
            try:
                reply = call()
            except grpc.RpcError as error:
                self.codes[error.code()] += 1  # type: ignore[attr-defined]
                assert error.code() in RETRYABLE, (  # type: ignore[attr-defined]
                    f"{what}: {error.code()} {error.details()}")  # type: ignore[attr-defined]
                return None
            self.codes[grpc.StatusCode.OK] += 1
            return reply

        return wait_until(attempt, what, timeout)


def health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2).status
        except grpc.RpcError:
            return -1


def frozen(client: LedgerClient, account: str, min_position: int = 0) -> int:
    reply = client.report.GetBalance(report_pb2.GetBalanceRequest(
        account=account, min_log_position=min_position), timeout=10)
    return sum(b.frozen for b in reply.balances)


def lag(client: LedgerClient) -> int:
    return client.report.GetProjectionStatus(report_pb2.GetProjectionStatusRequest(),
                                             timeout=10).lag


def outage_lines(process: LedgerProcess) -> list[str]:
    return [line for line in process.output.splitlines() if "retrying until it works" in line]


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def started_here() -> Iterator[Started]:
    started = Started()
    yield started
    started.kill_all()


def with_host(url: str, address: str) -> str:
    """The same database URL, reached through ``address`` (a proxy)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[0] + "@" + address if "@" in parts.netloc else address
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    upstream = urlsplit(POSTGRES_URL)
    through = TcpProxy((upstream.hostname or "127.0.0.1", upstream.port or 5432))
    yield through
    through.close()


def started(process: LedgerProcess, address: str) -> None:
    wait_until(lambda: health(address) == health_pb2.HealthCheckResponse.SERVING,
               f"{process.args[0]} to serve", timeout=60)


def test_reads_recover_after_every_database_connection_of_the_server_is_terminated(
    tmp_path: Path, postgres_url: str, keys: Keys, started_here: Started,
) -> None:
    server, address = serve(tmp_path, postgres_url, keys, LEDGER_HEALTH_INTERVAL=HEALTH_INTERVAL)
    started_here.add(server)
    try:
        started(server, address)
        with LedgerClient(address, keys.shop_a) as shop:
            enroll(shop, "alice", without_sponsor=True)
            enroll(shop, "bob", "alice")
            enroll(shop, "carol", "bob")
            place(shop, "O1")
            pay(shop, "O1")
            wait_until(lambda: frozen(shop, "reseller:carol") == 1599 or None, "O1's split")
            for blip in range(3):
                assert terminate_connections(server.app_name) > 0
                calls = Calls()
                calls.until_ok(lambda n=blip: place(shop, f"P{n}"), "a write after the blip")
                oid = f"P{blip}"
                paid = calls.until_ok(lambda o=oid: shop.storefront.PayOrder(
                    _pay_request(o), timeout=10), "a payment")
                position = paid.receipt.log_position
                # Read-your-writes: the read models, which lost their connection too, apply
                # the payment and the read waits for it.
                carol = calls.until_ok(lambda p=position: frozen(shop, "reseller:carol", p),
                                       "a min_log_position read", timeout=RECOVERY)
                assert carol == 1599 * (blip + 2)
                assert calls.until_ok(lambda: lag(shop) == 0 or None, "lag back to 0",
                                      timeout=RECOVERY)
                assert set(calls.codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}
            assert health(address) == health_pb2.HealthCheckResponse.SERVING
        assert server.alive()
        assert "Traceback" not in server.output
        assert "projection batch failed" not in server.output
    finally:
        assert server.stop() == 0, server.output


def _pay_request(order_id: str) -> Any:
    from ledger.clients.sdk import idempotency_key

    from ledger.v1 import storefront_pb2

    return storefront_pb2.PayOrderRequest(idempotency_key=idempotency_key(), order_id=order_id,
                                          payment_id=f"pay-{order_id}", amount=9999)


def test_health_and_reads_follow_the_store_through_an_outage(
    tmp_path: Path, postgres_url: str, keys: Keys, proxy: TcpProxy,
    started_here: Started,
) -> None:
    """The database goes away (every connection dropped, new ones refused) and comes back:
    meanwhile health says NOT_SERVING and calls get UNAVAILABLE; afterwards everything works
    again within seconds, with no restart."""
    url = with_host(postgres_url, proxy.address)
    server, address = serve(tmp_path, url, keys, LEDGER_HEALTH_INTERVAL=HEALTH_INTERVAL)
    started_here.add(server)
    try:
        started(server, address)
        with LedgerClient(address, keys.shop_a) as shop:
            enroll(shop, "alice", without_sponsor=True)
            place(shop, "O1", reseller="alice")
            pay(shop, "O1")
            wait_until(lambda: frozen(shop, "reseller:alice") == 1599 or None, "O1's split")

            proxy.cut()
            wait_until(lambda: health(address) == health_pb2.HealthCheckResponse.NOT_SERVING,
                       "health to say NOT_SERVING", timeout=15)
            for call in (lambda: frozen(shop, "reseller:alice"), lambda: lag(shop),
                         lambda: place(shop, "O2", reseller="alice")):
                with pytest.raises(grpc.RpcError) as refused:
                    call()
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, (  # type: ignore[attr-defined]
                    refused.value.details())  # type: ignore[attr-defined]

            proxy.restore()
            back = time.monotonic()
            calls = Calls()
            placed = calls.until_ok(lambda: place(shop, "O3", reseller="alice"), "a write",
                                    timeout=RECOVERY)
            paid = calls.until_ok(lambda: shop.storefront.PayOrder(_pay_request("O3"),
                                                                   timeout=10), "a payment")
            assert placed.order_id == "O3"
            position = paid.receipt.log_position
            assert calls.until_ok(lambda: frozen(shop, "reseller:alice", position),
                                  "a min_log_position read", timeout=RECOVERY) == 1599 * 2
            calls.until_ok(lambda: lag(shop) == 0 or None, "lag back to 0", timeout=RECOVERY)
            wait_until(lambda: health(address) == health_pb2.HealthCheckResponse.SERVING,
                       "health to say SERVING again", timeout=RECOVERY)
            recovered_in = time.monotonic() - back
            assert recovered_in < RECOVERY, recovered_in
        assert server.alive()
        # One warning per loop for the whole outage, not one per try.
        assert 1 <= len(outage_lines(server)) <= 4, outage_lines(server)
    finally:
        assert server.stop() == 0, server.output


def test_health_says_not_serving_while_the_read_models_stand_still_behind_the_log(
    tmp_path: Path, postgres_url: str, keys: Keys, started_here: Started,
) -> None:
    """External read models with no projector running: the log grows, they do not move."""
    server, address = serve(tmp_path, postgres_url, keys, LEDGER_PROJECTIONS="external",
                            LEDGER_HEALTH_INTERVAL=HEALTH_INTERVAL, LEDGER_HEALTH_MAX_STALL="1")
    started_here.add(server)
    projector: LedgerProcess | None = None
    try:
        started(server, address)  # nothing written yet: nothing to follow
        with LedgerClient(address, keys.shop_a) as shop:
            enroll(shop, "alice", without_sponsor=True)
            wait_until(lambda: health(address) == health_pb2.HealthCheckResponse.NOT_SERVING,
                       "health to notice the read models standing still", timeout=15)
            projector = started_here.add(project(tmp_path, postgres_url))
            wait_until(lambda: health(address) == health_pb2.HealthCheckResponse.SERVING,
                       "health once the projector runs", timeout=30)
            wait_until(lambda: lag(shop) == 0 or None, "the projector to catch up")
    finally:
        if projector is not None:
            assert projector.stop() == 0, projector.output
        assert server.stop() == 0, server.output


def test_ledger_project_rides_out_lost_connections_and_an_outage(
    tmp_path: Path, postgres_url: str, keys: Keys, proxy: TcpProxy,
    started_here: Started,
) -> None:
    server, address = serve(tmp_path, postgres_url, keys, LEDGER_PROJECTIONS="external")
    started_here.add(server)
    projector = started_here.add(project(tmp_path, with_host(postgres_url, proxy.address)))
    try:
        started(server, address)
        with LedgerClient(address, keys.shop_a) as shop:
            enroll(shop, "alice", without_sponsor=True)
            wait_until(lambda: lag(shop) == 0 or None, "the projector to start", timeout=60)
            # Idle, then busy: its connections are terminated each time.
            for n in range(3):
                wait_until(lambda: connections_of(projector.app_name) or None,
                           "the projector to connect")
                terminate_connections(projector.app_name)
                place(shop, f"O{n}", reseller="alice")
                paid = pay(shop, f"O{n}")
                assert paid.status
                wait_until(lambda: lag(shop) == 0 or None, "the projector to catch up")
            # The database away for a while, then back.
            proxy.cut()
            for n in range(3, 6):
                place(shop, f"O{n}", reseller="alice")
                pay(shop, f"O{n}")
            time.sleep(2)
            assert projector.alive()
            assert lag(shop) > 0
            proxy.restore()
            wait_until(lambda: lag(shop) == 0 or None, "the projector to catch up again",
                       timeout=RECOVERY)
            assert frozen(shop, "reseller:alice") == 1599 * 6
        assert projector.alive(), projector.output
        assert "Traceback" not in projector.output
        assert 1 <= len(outage_lines(projector)) <= 4, projector.output
    finally:
        assert projector.stop() == 0, projector.output
        assert server.stop() == 0, server.output
