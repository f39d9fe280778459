"""Settings, read from the environment, with defaults that run on a laptop.

With nothing set, the ledger stores its events in a SQLite file under ./ledger-data and
listens on 127.0.0.1:50051. PostgreSQL is chosen by one setting:
LEDGER_DATABASE_URL=postgresql://user:password@host:5432/dbname (``?schema=name`` optional).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

DEFAULT_DATABASE_URL = "sqlite:///ledger-data/ledger.sqlite3"


class ConfigError(ValueError):
    """A setting has a value the ledger cannot use."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    listen: str = "127.0.0.1:50051"
    api_keys_file: str = ""
    api_keys_json: str = ""
    log_format: str = "console"
    log_level: str = "info"
    batch_max: int = 200
    batch_wait_ms: float = 0.0
    projections: str = "inline"
    projection_batch: int = 1000
    rebuild_batch: int = 10_000
    settlement_interval: float = 60.0
    workers: int = 1
    timezone: str = "Asia/Shanghai"
    health_interval: float = 1.0
    aggregate_cache: int = 20_000
    projection_cache: int = 50_000
    health_max_stall: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def number(name: str, default: float) -> float:
            raw = env.get(name, "")
            try:
                return float(raw) if raw else default
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a number") from None

        def positive(name: str, default: float) -> float:
            value = number(name, default)
            if value <= 0:
                raise ConfigError(f"{name}={env.get(name)!r} must be above 0")
            return value

        return cls(
            database_url=env.get("LEDGER_DATABASE_URL") or DEFAULT_DATABASE_URL,
            listen=env.get("LEDGER_LISTEN") or "127.0.0.1:50051",
            api_keys_file=env.get("LEDGER_API_KEYS_FILE", ""),
            api_keys_json=env.get("LEDGER_API_KEYS", ""),
            log_format=env.get("LEDGER_LOG_FORMAT") or "console",
            log_level=env.get("LEDGER_LOG_LEVEL") or "info",
            batch_max=int(number("LEDGER_BATCH_MAX", 200)),
            batch_wait_ms=number("LEDGER_BATCH_WAIT_MS", 0.0),
            projections=projections_mode(env.get("LEDGER_PROJECTIONS") or "inline"),
            timezone=time_zone(env.get("LEDGER_TIMEZONE") or "Asia/Shanghai"),
            projection_batch=int(number("LEDGER_PROJECTION_BATCH", 1000)),
            rebuild_batch=int(number("LEDGER_REBUILD_BATCH", 10_000)),
            settlement_interval=number("LEDGER_SETTLEMENT_INTERVAL", 60.0),
            workers=int(number("LEDGER_WORKERS", 1)),
            aggregate_cache=int(positive("LEDGER_AGGREGATE_CACHE", 20_000)),
            projection_cache=int(positive("LEDGER_PROJECTION_CACHE", 50_000)),
            health_interval=positive("LEDGER_HEALTH_INTERVAL", 1.0),
            health_max_stall=positive("LEDGER_HEALTH_MAX_STALL", 30.0),
        )


def time_zone(name: str) -> str:
    """An IANA time zone name, such as Asia/Shanghai."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"LEDGER_TIMEZONE={name!r} is not an IANA time zone") from None
    return name


def projections_mode(value: str) -> str:
    """``inline``: each server keeps the read models current itself; ``external``: a separate
    ``ledger project`` process does, and servers only read them."""
    if value not in ("inline", "external"):
        raise ConfigError(f"LEDGER_PROJECTIONS={value!r}: use inline or external")
    return value


def event_store_env(database_url: str) -> dict[str, str]:
    """Translates a database URL into the eventsourcing library's settings."""
    url = urlparse(database_url)
    if url.scheme == "sqlite":
        path = unquote(url.path[1:] if url.path.startswith("/") else url.path)
        if not path:
            raise ConfigError("a sqlite URL needs a file path: sqlite:///path/to/ledger.sqlite3")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path,
                "SQLITE_LOCK_TIMEOUT": "30"}
    if url.scheme in ("postgres", "postgresql"):
        dbname = url.path.lstrip("/")
        if not dbname:
            raise ConfigError("a postgresql URL needs a database name")
        query = parse_qs(url.query)
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(dbname),
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            "POSTGRES_LOCK_TIMEOUT": "30",
            # How long a call waits for a connection from the pool (the library's default is
            # 30 s, for which every call hung while the database was away).
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_POOL_SIZE": query.get("pool_size", ["10"])[0],
            # Inserts take the library's table lock (not its lock-free database function), so
            # log positions become visible in commit order and the projection runner can
            # never read past an event that has yet to commit.
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
            # The library's recorder with a cheaper batch insert (see pg_recorder.py).
            "APPLICATION_RECORDER_TOPIC": "ledger.application.pg_recorder:LedgerPostgresRecorder",
        }
        if "schema" in query:
            env["POSTGRES_SCHEMA"] = query["schema"][0]
        return env
    raise ConfigError(
        f"LEDGER_DATABASE_URL scheme {url.scheme!r} is not supported: use sqlite:/// or postgresql://"
    )
