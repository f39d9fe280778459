"""Starting and stopping the processes a benchmark measures: a ledger server in a fresh
PostgreSQL schema, and the rebuild, shared by ``python -m bench`` and ``python -m bench.scale``."""

from __future__ import annotations

import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import psycopg
from psycopg import sql

from bench import audit_rates
from bench.cpu import Meter, Split
from ledger.api.auth import hash_key
from ledger.config import event_store_env, postgres_connection

BIN = Path(sys.executable).parent
KEY = "bench-storefront-key"
# The bench's servers sign their audit heads with one key, made on the first run.
AUDIT_KEY_FILE = Path(tempfile.gettempdir()) / "ledger-bench-audit-signing-key.pem"
FINANCE_KEY = "bench-finance-key"

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(address: str, process: subprocess.Popen[bytes]) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            with grpc.insecure_channel(address) as channel:
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                          timeout=1)
                return
        except grpc.RpcError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def wait_port(address: str) -> None:
    host, port = address.split(":")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, int(port))) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on {address}")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Schemas:
    """Fresh PostgreSQL schemas for one run, dropped at the end."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.made: list[str] = []

    def url(self, name: str) -> str:
        schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
        self.made.append(schema)
        return f"{self.base_url}{'&' if '?' in self.base_url else '?'}schema={schema}"

    def drop(self) -> None:
        # Connected as the ledger connects (sslmode and the URL's other libpq parameters).
        with psycopg.connect(**postgres_connection(event_store_env(self.base_url)),
                             autocommit=True) as conn:
            for schema in self.made:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
                             .format(sql.Identifier(schema)))


def start_ledger(url: str, extra: dict[str, str] | None = None, log_file: Path | None = None
                 ) -> tuple[subprocess.Popen[bytes], str]:
    """`ledger serve` over ``url``, its output to ``log_file`` (default: nowhere)."""
    address = f"127.0.0.1:{free_port()}"
    keys = json.dumps({"keys": [{"name": "bench-shop", "role": "storefront",
                                 "platform": "bench", "sha256": hash_key(KEY)},
                                {"name": "bench-auditor", "role": "auditor",
                                 "platform": "bench",
                                 "sha256": hash_key(audit_rates.AUDITOR_KEY)},
                                {"name": "bench-finance", "role": "finance",
                                 "platform": "bench", "sha256": hash_key(FINANCE_KEY)}]})
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_LISTEN": address,
           "LEDGER_API_KEYS": keys, "LEDGER_LOG_LEVEL": "warning",
           "LEDGER_AUDIT_KEY_FILE": str(AUDIT_KEY_FILE),
           "LEDGER_SETTLEMENT_INTERVAL": "0", **(extra or {})}
    with open(log_file or os.devnull, "ab") as output:
        process = subprocess.Popen([str(BIN / "ledger"), "serve"], env=env, stdout=output,
                                   stderr=output)
    wait_healthy(address, process)
    return process, address


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def rebuild_rate(url: str) -> tuple[float, int, Split]:
    """(log positions per second, log size, the machine's CPU meanwhile: the rebuild's own
    process as tested, the rest PostgreSQL's)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    meter = Meter()
    done = subprocess.run([str(BIN / "ledger"), "projections", "rebuild"],
                          env={**os.environ, "LEDGER_DATABASE_URL": url,
                               "LEDGER_LOG_LEVEL": "warning"},
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"ledger projections rebuild failed:\n{done.stderr[-3000:]}")
    seen = meter.read()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    split = Split(own, seen.client, max(0.0, seen.rest - own), seen.seconds)
    found = re.search(r"from (\d+) events in [\d.]+s \(([\d,]+) events/s\)", done.stdout)
    assert found, done.stdout
    return float(found.group(2).replace(",", "")), int(found.group(1)), split


