"""`ledger serve` refuses what it cannot use in one line and a non-zero exit, in seconds: a
port another process holds, and each configuration mistake. No traceback, no password."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.api.server import LedgerServer, ServerThread
from ledger.config import ConfigError, Settings
from tests.conftest import POSTGRES_URL, Keys, drop_schema
from tests.e2e.test_cli import LEDGER, free_port, wait_healthy

PASSWORD = "s3cret-pw"  # the local PostgreSQL trusts every connection: any password works


def refusal(env: dict[str, str], *command: str, cwd: Path | None = None) -> str:
    """Runs ``ledger serve`` (or ``command``), which must fail with exit code 2 and one
    line; returns the line."""
    done = subprocess.run([LEDGER, *(command or ("serve",))], env={**os.environ, **env},
                          cwd=cwd, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert len(output.strip().splitlines()) == 1, output
    assert "Traceback" not in output and PASSWORD not in output, output
    return output.strip()


@pytest.fixture
def held_port() -> Iterator[str]:
    """An address a plain socket (not a ledger) is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield f"127.0.0.1:{holder.getsockname()[1]}"


def test_a_port_another_program_holds_is_refused(held_port: str, tmp_path: Path) -> None:
    line = refusal({"LEDGER_LISTEN": held_port,
                    "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})
    assert line == (f"ledger: LEDGER_LISTEN={held_port}: the port is already in use by "
                    "another process (another ledger serve, or another program)")


def test_a_second_ledger_serve_on_a_served_port_is_refused(tmp_path: Path) -> None:
    """Two servers over two stores had answered one address, the kernel splitting the
    connections between them. The first keeps serving, and logs JSON as asked (JSON in any
    case: LEDGER_LOG_FORMAT=JSON had given console output)."""
    address = f"127.0.0.1:{free_port()}"
    first = subprocess.Popen(
        [LEDGER, "serve"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "LEDGER_LISTEN": address, "LEDGER_LOG_FORMAT": "JSON",
             "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'first.sqlite3'}"})
    try:
        wait_healthy(address)
        line = refusal({"LEDGER_LISTEN": address,
                        "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'second.sqlite3'}"})
        assert "already in use" in line
        wait_healthy(address)
    finally:
        first.send_signal(signal.SIGTERM)
        output, _ = first.communicate(timeout=30)
    assert first.returncode == 0, output
    logged = [json.loads(line) for line in output.splitlines()]
    assert {"ledger serving", "ledger stopped"} <= {entry["event"] for entry in logged}


@pytest.mark.postgres
def test_several_workers_refuse_a_held_port_before_starting_any(
    held_port: str, postgres_url: str,
) -> None:
    line = refusal({"LEDGER_LISTEN": held_port, "LEDGER_WORKERS": "2",
                    "LEDGER_DATABASE_URL": f"{postgres_url}&pool_size=2"})
    assert "already in use" in line


def test_a_server_binds_its_port_alone(tmp_path: Path) -> None:
    """Without the check `ledger serve` makes first, the bind itself refuses: only the
    worker processes of one server share a port (SO_REUSEPORT)."""
    keys = Keys().ring()
    first = LedgerServer(Settings(database_url=f"sqlite:///{tmp_path / 'a.sqlite3'}",
                                  listen="127.0.0.1:0"), keys)
    with ServerThread(first) as running:
        second = LedgerServer(Settings(database_url=f"sqlite:///{tmp_path / 'b.sqlite3'}",
                                       listen=running.target), keys)
        try:
            with pytest.raises(ConfigError, match="cannot listen there"):
                asyncio.run(second.start())
        finally:
            second.models.close()
            second.app.close()


@pytest.mark.parametrize("env, expected", [
    # {port}: a port nothing listens on, found when the test runs.
    ({"LEDGER_DATABASE_URL": f"postgresql://app:{PASSWORD}@127.0.0.1:{{port}}/test"},
     "cannot use PostgreSQL at 127.0.0.1:{port} (database test, user app; "
     "LEDGER_DATABASE_URL): Connection refused"),
    ({"LEDGER_DATABASE_URL": f"postgresql://app:{PASSWORD}@127.0.0.1:abc/test"},
     "LEDGER_DATABASE_URL=postgresql://app:***@127.0.0.1:abc/test: the port 'abc' is not "
     "a number"),
    ({"LEDGER_DATABASE_URL": f"postgresql://app:{PASSWORD}@127.0.0.1/test?sslmde=require"},
     "LEDGER_DATABASE_URL=postgresql://app:***@127.0.0.1/test?sslmde=require: invalid "
     "connection option \"sslmde\""),
    ({"LEDGER_DATABASE_URL": f"mysql://app:{PASSWORD}@127.0.0.1/test"},
     "LEDGER_DATABASE_URL=mysql://app:***@127.0.0.1/test: the scheme 'mysql' is not "
     "supported"),
    ({"LEDGER_API_KEYS_FILE": "missing-keys.json"},
     "LEDGER_API_KEYS_FILE=missing-keys.json: No such file or directory"),
    ({"LEDGER_API_KEYS_FILE": "."}, "LEDGER_API_KEYS_FILE=.: Is a directory"),
    ({"LEDGER_LOG_FORMAT": "xml"}, "LEDGER_LOG_FORMAT='xml': use console or json"),
    ({"LEDGER_LOG_LEVEL": "verbose"},
     "LEDGER_LOG_LEVEL='verbose': use debug, info, warning, error, critical"),
    ({"LEDGER_LISTEN": "127.0.0.1:http"}, "LEDGER_LISTEN='127.0.0.1:http' is not host:port"),
    ({"LEDGER_WORKERS": "0"}, "LEDGER_WORKERS='0': use a number from 1"),
])
def test_each_configuration_mistake_is_one_clear_line(
    tmp_path: Path, env: dict[str, str], expected: str,
) -> None:
    port = free_port()
    env = {name: value.format(port=port) for name, value in env.items()}
    line = refusal({"LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}", **env},
                   cwd=tmp_path)
    assert line.startswith("ledger: " + expected.format(port=port)), line


@pytest.mark.postgres
def test_a_store_that_refuses_the_schema_is_one_line_too() -> None:
    """The URL's libpq options reach bootstrap's own connection: read-only, it cannot make
    the schema, and says so (the password hidden)."""
    url = (f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/test?schema=t_{uuid.uuid4().hex[:8]}"
           "&options=-c%20default_transaction_read_only%3Don")
    line = refusal({"LEDGER_DATABASE_URL": url}, "projections", "status")
    assert "cannot use PostgreSQL at 127.0.0.1:5432" in line
    assert "read-only transaction" in line


@pytest.mark.postgres
def test_demo_never_prints_the_database_password(tmp_path: Path) -> None:
    base = POSTGRES_URL.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")
    url = f"{base}?pool_size=2&schema=t_{uuid.uuid4().hex[:16]}"
    try:
        done = subprocess.run([LEDGER, "demo"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300, env={**os.environ, "LEDGER_DATABASE_URL": url})
    finally:
        drop_schema(url)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert PASSWORD not in output
    assert "events in postgresql://postgres:***@" in output
