"""The ledger's own processes (`ledger serve`, `ledger project`) started as a user would, for
the tests that kill them or take their database away.

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
from pathlib import Path
from typing import TypeVar

import psycopg

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
