"""The ledger's own processes (`ledger serve`, `ledger project`) started as a user would, for
the tests that kill them or take their database away (and ``Served``: a server killed and
started again over one store, for the crash tests).

Each process gets its own PostgreSQL ``application_name`` (libpq's PGAPPNAME), so a test can
find and terminate exactly that process's connections (``terminate_connections``) without
touching anyone else's on the shared server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import grpc
import psycopg
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from ledger.clients.sdk import LedgerClient
from ledger.clients.simulator import line

from ledger.v1 import storefront_pb2
from tests.conftest import POSTGRES_URL, Keys

LEDGER = str(Path(sys.executable).parent / "ledger")
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keys_json(keys: Keys) -> str:
    """The test keys as LEDGER_API_KEYS holds them (hashes only)."""
    ring = keys.ring()
    return json.dumps({"keys": [
        {"name": k.name, "role": k.role, "platform": k.platform, "sha256": k.sha256}
        for k in ring._by_hash.values()]})


def wait_until(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Polls ``check`` until it returns something other than None or False."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


@dataclass
class LedgerProcess:
    """One `ledger` subcommand running in the background, its output in a file."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    app_name: str = field(default_factory=lambda: f"ledger-test-{uuid.uuid4().hex[:10]}")
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> LedgerProcess:
        env = {**os.environ, "PGAPPNAME": self.app_name, **self.env}
        with self.log_path.open("ab") as out:
            self.popen = subprocess.Popen([LEDGER, *self.args], env=env, stdout=out,
                                          stderr=subprocess.STDOUT, cwd=self.log_path.parent)
        return self

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as a crash or the OOM killer."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM, then the exit code."""
        assert self.popen is not None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            raise


def small_pool(database_url: str) -> str:
    """The URL with a small event-store pool: PostgreSQL's 100 connections are shared by
    every test on the machine."""
    return f"{database_url}&pool_size=2" if "?" in database_url else \
        f"{database_url}?pool_size=2"


class Started:
    """The processes a test started, all killed at its end whatever happened (a test that
    fails half-way must not leave a server holding connections to the shared database)."""

    def __init__(self) -> None:
        self.processes: list[LedgerProcess] = []

    def add(self, process: LedgerProcess) -> LedgerProcess:
        self.processes.append(process)
        return process

    def kill_all(self) -> None:
        for process in self.processes:
            if process.alive():
                process.kill()


def serve(tmp_path: Path, database_url: str, keys: Keys, **env: str) -> tuple[LedgerProcess, str]:
    """`ledger serve` on a free port; returns it (started) and its address."""
    database_url = small_pool(database_url)
    address = f"127.0.0.1:{free_port()}"
    process = LedgerProcess(["serve"], {
        "LEDGER_DATABASE_URL": database_url, "LEDGER_LISTEN": address,
        "LEDGER_API_KEYS": keys_json(keys), "LEDGER_SETTLEMENT_INTERVAL": "0", **env,
    }, tmp_path / f"serve-{address.rsplit(':', 1)[1]}.log")
    return process.start(), address


def serve_workers(started: Started, tmp_path: Path, database_url: str, keys: Keys, **env: str
                  ) -> tuple[LedgerProcess, str]:
    """`ledger serve` with LEDGER_WORKERS=2 and JSON logs (each line with its pid), once
    both processes serve; added to ``started``."""
    process, address = serve(tmp_path, database_url, keys, LEDGER_WORKERS="2",
                             LEDGER_LOG_FORMAT="json",
                             LEDGER_AUDIT_KEY_FILE=str(tmp_path / "audit.pem"), **env)
    started.add(process)
    wait_until(lambda: process.output.count('"ledger serving"') == 2 or not process.alive(),
               "both server processes to serve", START_TIMEOUT)
    assert process.alive() and serving(address), process.output
    return process, address


def project(tmp_path: Path, database_url: str, **env: str) -> LedgerProcess:
    process = LedgerProcess(["project"], {"LEDGER_DATABASE_URL": small_pool(database_url),
                                          **env},
                            tmp_path / f"project-{uuid.uuid4().hex[:6]}.log")
    return process.start()


def terminate_connections(app_name: str) -> int:
    """Ends every PostgreSQL backend that ``app_name``'s process holds, as a database restart
    or failover would; returns how many there were."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s", (app_name,)).fetchall()
    return len(rows)


def connections_of(app_name: str) -> int:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                           (app_name,)).fetchone()
    return int(row[0]) if row else 0


# --- a server killed and started again (the crash tests) -------------------------------------

TIMEZONE = "Asia/Shanghai"
START_TIMEOUT = 90.0  # four engineers' suites share two cores: a start can take a while


def serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            ).status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False


class Served:
    """`ledger serve` over one store, which a test kills (or makes die at a failpoint) and
    starts again: the same store and keys, on a free port each time, and at most four
    event-store connections (the eventsourcing library's pool overflow, capped)."""

    def __init__(self, tmp_path: Path, database_url: str, keys: Keys) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.keys = keys
        self.process: LedgerProcess | None = None
        self.address = ""

    def start(self, failpoints: str = "", **env: str) -> Served:
        """Starts serving; on another port if another process took the one chosen before
        the server bound it (the machine is shared)."""
        assert self.process is None or not self.process.alive()
        for _ in range(5):
            self.process, self.address = serve(
                self.tmp_path, self.database_url, self.keys, LEDGER_FAILPOINTS=failpoints,
                LEDGER_LOG_LEVEL="warning", POSTGRES_MAX_OVERFLOW="2", **env)
            if self._up():
                return self
            assert "Failed to bind" in self.process.output, self.process.output
        raise AssertionError("no free port to serve on")

    def _up(self) -> bool:
        """Waits until it serves (True) or exits (False)."""
        assert self.process is not None
        wait_until(lambda: serving(self.address) or not self.process.alive(),
                   "the server to serve", START_TIMEOUT)
        return self.process.alive()

    def kill(self) -> None:
        """kill -9, and waits until it is gone."""
        assert self.process is not None and self.process.popen is not None
        self.process.kill()
        assert self.process.popen.returncode == -signal.SIGKILL

    def died_at_failpoint(self, name: str) -> None:
        """The process killed itself at the failpoint ``name`` (as kill -9 would)."""
        assert self.process is not None and self.process.popen is not None
        assert self.process.popen.wait(timeout=60) == -signal.SIGKILL, self.process.output
        assert f"failpoint {name}: crashing" in self.process.output, self.process.output

    def stop(self) -> None:
        if self.process is not None and self.process.alive():
            self.process.stop()

    def client(self, key: str) -> LedgerClient:
        return LedgerClient(self.address, key)


def today() -> date:
    return datetime.now(ZoneInfo(TIMEZONE)).date()


def days_ago(n: int) -> date:
    return today() - timedelta(days=n)


def local_noon(day: date) -> Timestamp:
    """Noon of ``day`` in the platform's time zone: inside that day whatever the clock."""
    stamp = Timestamp()
    stamp.FromDatetime(datetime.combine(day, clock_time(12), ZoneInfo(TIMEZONE))
                       .astimezone(UTC))
    return stamp


def backfill(shop: LedgerClient, order_ids: list[str], paid: date,
             completed: date | None = None) -> storefront_pb2.ImportOrdersResponse:
    """Orders paid at noon of a past day (and received at noon of another): 10.00 each,
    6.00 of it owed to supplier S1, no reseller, so the margin is the platform's."""
    reply = shop.storefront.ImportOrders(iter([storefront_pb2.ImportOrdersRequest(orders=[
        storefront_pb2.ImportedOrder(
            order_id=order_id, customer_id=f"c-{order_id}", currency="CNY",
            lines=[line("tea", 1, 1000, 600)], payment_id=f"pay-{order_id}",
            paid_at=local_noon(paid), completed=completed is not None,
            completed_at=local_noon(completed) if completed else None)
        for order_id in order_ids])]), timeout=60)
    assert reply.imported == len(order_ids), reply.failures
    return reply
