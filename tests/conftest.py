"""Shared fixtures: real stores (a SQLite file, a PostgreSQL schema), a real gRPC server.

Every store-backed test runs twice, on SQLite and on PostgreSQL. PostgreSQL is the server at
LEDGER_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test); each test gets a
schema of its own, dropped afterwards. A PostgreSQL that cannot be reached fails those tests:
it is never silently skipped.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from ledger.clients.sdk import LedgerClient
from psycopg import sql

from ledger.api.auth import ADMIN, AUDITOR, FINANCE, STOREFRONT, ApiKey, KeyRing, hash_key
from ledger.api.server import LedgerServer, ServerThread
from ledger.application.ledger_app import LedgerApplication
from ledger.bootstrap import build_application
from ledger.config import Settings

POSTGRES_URL = os.environ.get(
    "LEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


class Clock:
    """The ledger's clock in tests: starts at a fixed moment, moves only when told to."""

    def __init__(self, start: datetime = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self.now += timedelta(**delta)
            return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def drop_schema(url: str) -> None:
    schema = url.rsplit("schema=", 1)[1]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _postgres_schema() -> Iterator[str]:
    url = f"{POSTGRES_URL}?schema=t_{uuid.uuid4().hex[:16]}"
    yield url
    drop_schema(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty event store: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    else:
        yield from _postgres_schema()


def example_store(store_url: str, tmp_path: Path) -> str:
    """A fresh store for one hypothesis example (many run inside one test): its own SQLite
    file, or its own PostgreSQL schema beside the test's (drop it with drop_schema)."""
    tag = uuid.uuid4().hex[:8]
    if store_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / f'{tag}.sqlite3'}"
    return f"{store_url}_{tag}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _postgres_schema()


@pytest.fixture
def app(store_url: str, clock: Clock) -> Iterator[LedgerApplication]:
    application = build_application(store_url, clock)
    yield application
    application.close()


@dataclass
class Keys:
    shop_a: str = "key-shop-a"
    shop_b: str = "key-shop-b"
    admin: str = "key-admin"
    other_platform_shop: str = "key-other-platform"
    finance: str = "key-finance"
    auditor: str = "key-auditor"
    other_platform_auditor: str = "key-auditor-globex"

    def ring(self) -> KeyRing:
        return KeyRing([
            ApiKey("shop-a", STOREFRONT, "acme", hash_key(self.shop_a)),
            ApiKey("shop-b", STOREFRONT, "acme", hash_key(self.shop_b)),
            ApiKey("ops", ADMIN, "acme", hash_key(self.admin)),
            ApiKey("shop-a", STOREFRONT, "globex", hash_key(self.other_platform_shop)),
            ApiKey("fin", FINANCE, "acme", hash_key(self.finance)),
            ApiKey("books", AUDITOR, "acme", hash_key(self.auditor)),
            ApiKey("books", AUDITOR, "globex", hash_key(self.other_platform_auditor)),
        ])


@dataclass
class Running:
    target: str
    keys: Keys
    server: LedgerServer

    def client(self, key: str) -> LedgerClient:
        return LedgerClient(self.target, key)


@pytest.fixture
def running(store_url: str, clock: Clock, tmp_path: Path) -> Iterator[Running]:
    """A real gRPC server on a free loopback port, over the store under test."""
    keys = Keys()
    settings = Settings(database_url=store_url, listen="127.0.0.1:0",
                        audit_key_file=str(tmp_path / "audit-signing-key.pem"),
                        identity_keys_file=str(tmp_path / "identity-keys.json"))
    server = LedgerServer(settings, keys.ring(), clock=clock)
    with ServerThread(server) as thread:
        yield Running(thread.target, keys, server)


@pytest.fixture
def shop(running: Running) -> Iterator[LedgerClient]:
    with running.client(running.keys.shop_a) as client:
        yield client


@pytest.fixture
def admin(running: Running) -> Iterator[LedgerClient]:
    with running.client(running.keys.admin) as client:
        yield client


@pytest.fixture
def finance(running: Running) -> Iterator[LedgerClient]:
    with running.client(running.keys.finance) as client:
        yield client
