"""Settings, read from the environment, with defaults that run on a laptop.

With nothing set, the ledger stores its events in a SQLite file under ./ledger-data and
listens on 127.0.0.1:50051. PostgreSQL is chosen by one setting:
LEDGER_DATABASE_URL=postgresql://user:password@host:5432/dbname (``?schema=name`` optional,
and libpq's parameters, such as ``sslmode=require``, for every connection).

A value the ledger cannot use is a ConfigError naming the setting and the value, with any
password shown as ***: the command line prints it as its one line and exits.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

DEFAULT_DATABASE_URL = "sqlite:///ledger-data/ledger.sqlite3"


class ConfigError(ValueError):
    """A setting has a value the ledger cannot use."""


# Every setting `ledger serve` reads: (variable, Settings field, meaning). `ledger serve
# --help` lists them with the field's default, so the defaults shown are the ones used
# ("=value": the variable's own default, where the field holds what it is read into).
SETTINGS_HELP: tuple[tuple[str, str, str], ...] = (
    ("LEDGER_DATABASE_URL", "database_url", "the event store: sqlite:///path or "
     "postgresql://user:password@host:5432/db (?schema=, pool_size=, libpq's parameters)"),
    ("LEDGER_LISTEN", "listen", "gRPC address, host:port"),
    ("LEDGER_API_KEYS_FILE", "api_keys_file", "hashed API keys, a JSON file (ledger keys add)"),
    ("LEDGER_API_KEYS", "api_keys_json", "the same JSON inline"),
    ("LEDGER_LOG_FORMAT", "log_format", "console or json"),
    ("LEDGER_LOG_LEVEL", "log_level", "debug, info, warning, error or critical"),
    ("LEDGER_BATCH_MAX", "batch_max", "group commit: most commands per transaction"),
    ("LEDGER_BATCH_WAIT_MS", "batch_wait_ms", "group commit: how long to wait for more"),
    ("LEDGER_PROJECTIONS", "projections", "inline (the server keeps the read models) or "
     "external (ledger project does)"),
    ("LEDGER_PROJECTION_BATCH", "projection_batch", "log entries applied per transaction"),
    ("LEDGER_REBUILD_BATCH", "rebuild_batch", "the same for ledger projections rebuild"),
    ("LEDGER_TIMEZONE", "timezone", "the platform's time zone (settlement days, months)"),
    ("LEDGER_SETTLEMENT_INTERVAL", "settlement_interval", "seconds between settlement runs "
     "(0: only on demand)"),
    ("LEDGER_AGGREGATE_CACHE", "aggregate_cache", "aggregates the writer keeps between batches"),
    ("LEDGER_PROJECTION_CACHE", "projection_cache", "tree nodes, orders and markers the read "
     "models' writers remember"),
    ("LEDGER_AUDIT_KEY_FILE", "audit_key_file", "the Ed25519 key signing the audit heads"),
    ("LEDGER_IDENTITY_KEYS_FILE", "identity_keys_file", "the keys payees' identities are "
     "sealed with (ledger identity-keys add)"),
    ("LEDGER_HEALTH_INTERVAL", "health_interval", "seconds between health probes"),
    ("LEDGER_HEALTH_MAX_STALL", "health_max_stall", "seconds the read models may stand still "
     "behind a growing log before health says NOT_SERVING"),
    ("LEDGER_WORKERS", "workers", "server processes on this host (PostgreSQL only)"),
    ("LEDGER_METRICS_LISTEN", "metrics_listen", "host:port for Prometheus's /metrics"),
    ("LEDGER_TLS_CERT", "tls_cert", "the server's certificate chain (PEM): TLS only"),
    ("LEDGER_TLS_KEY", "tls_key", "its private key (PEM)"),
    ("LEDGER_TLS_CLIENT_CA", "tls_client_ca", "mutual TLS: the CA client certificates need"),
    ("LEDGER_RECONCILIATION", "=breaks", "breaks: a day with open reconciliation breaks does "
     "not close; off: breaks never stop a close"),
)


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
    audit_key_file: str = "ledger-data/audit-signing-key.pem"
    identity_keys_file: str = "ledger-data/identity-keys.json"
    projection_cache: int = 50_000
    health_max_stall: float = 30.0
    metrics_listen: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    # Whether CloseDay refuses a day with open reconciliation breaks (LEDGER_RECONCILIATION).
    reconciliation_required: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def number(name: str, default: float, *, least: int = 0) -> float:
            raw = env.get(name, "")
            try:
                value = float(raw) if raw else default
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a number") from None
            if not least <= value < math.inf:
                raise ConfigError(f"{name}={raw!r}: use a number from {least}")
            return value

        def whole(name: str, default: int, *, least: int = 1) -> int:
            value = number(name, default, least=least)
            if value != int(value):
                raise ConfigError(f"{name}={env[name]!r} is not a whole number")
            return int(value)

        def positive(name: str, default: float) -> float:
            value = number(name, default)
            if value <= 0:
                raise ConfigError(f"{name}={env.get(name)!r} must be above 0")
            return value

        return cls(
            database_url=database_url(env.get("LEDGER_DATABASE_URL") or DEFAULT_DATABASE_URL),
            listen=listen_address(env.get("LEDGER_LISTEN") or "127.0.0.1:50051"),
            api_keys_file=env.get("LEDGER_API_KEYS_FILE", ""),
            api_keys_json=env.get("LEDGER_API_KEYS", ""),
            log_format=log_format(env.get("LEDGER_LOG_FORMAT") or "console"),
            log_level=log_level(env.get("LEDGER_LOG_LEVEL") or "info"),
            batch_max=whole("LEDGER_BATCH_MAX", 200),
            batch_wait_ms=number("LEDGER_BATCH_WAIT_MS", 0.0),
            projections=projections_mode(env.get("LEDGER_PROJECTIONS") or "inline"),
            timezone=time_zone(env.get("LEDGER_TIMEZONE") or "Asia/Shanghai"),
            projection_batch=whole("LEDGER_PROJECTION_BATCH", 1000),
            rebuild_batch=whole("LEDGER_REBUILD_BATCH", 10_000),
            settlement_interval=number("LEDGER_SETTLEMENT_INTERVAL", 60.0),
            workers=whole("LEDGER_WORKERS", 1),
            aggregate_cache=whole("LEDGER_AGGREGATE_CACHE", 20_000),
            audit_key_file=env.get("LEDGER_AUDIT_KEY_FILE") or Settings.audit_key_file,
            identity_keys_file=(env.get("LEDGER_IDENTITY_KEYS_FILE")
                                or Settings.identity_keys_file),
            projection_cache=whole("LEDGER_PROJECTION_CACHE", 50_000),
            health_interval=positive("LEDGER_HEALTH_INTERVAL", 1.0),
            health_max_stall=positive("LEDGER_HEALTH_MAX_STALL", 30.0),
            metrics_listen=metrics_address(env.get("LEDGER_METRICS_LISTEN", "")),
            reconciliation_required=reconciliation(env.get("LEDGER_RECONCILIATION") or "breaks"),
            **tls_files(env),
        )


LOG_FORMATS = ("console", "json")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def reconciliation(value: str) -> bool:
    """``breaks``: a day with an open break does not close; ``off``: breaks never stop a
    close (a platform that does not import bills yet is never stopped either way: a day
    without a bill has no break)."""
    if value not in ("breaks", "off"):
        raise ConfigError(f"LEDGER_RECONCILIATION={value!r}: use breaks or off")
    return value == "breaks"


def log_format(value: str) -> str:
    """``console`` (readable lines on a terminal) or ``json`` (a JSON object a line)."""
    if value.lower() not in LOG_FORMATS:
        raise ConfigError(f"LEDGER_LOG_FORMAT={value!r}: use {' or '.join(LOG_FORMATS)}")
    return value.lower()


def log_level(value: str) -> str:
    """One of the standard level names, in any case (warn and fatal too)."""
    if value.upper() not in logging.getLevelNamesMapping():
        raise ConfigError(f"LEDGER_LOG_LEVEL={value!r}: use {', '.join(LOG_LEVELS)}")
    return value.lower()


def time_zone(name: str) -> str:
    """An IANA time zone name, such as Asia/Shanghai."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"LEDGER_TIMEZONE={name!r} is not an IANA time zone") from None
    return name


def listen_address(value: str) -> str:
    """host:port (``[::]:50051`` for every interface; port 0: any free one), or grpc's
    ``unix:/path/to/socket``."""
    if value.startswith(("unix:", "unix-abstract:")):
        return value
    _, colon, port = value.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"LEDGER_LISTEN={value!r} is not host:port (e.g. 127.0.0.1:50051)")
    return value


def metrics_address(value: str) -> str:
    """host:port for Prometheus to scrape ``/metrics`` from; empty: no metrics."""
    if not value:
        return ""
    _, colon, port = value.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"LEDGER_METRICS_LISTEN={value!r} is not host:port "
                          "(e.g. 127.0.0.1:9464)")
    return value


def tls_files(env: Mapping[str, str]) -> dict[str, str]:
    """LEDGER_TLS_CERT and LEDGER_TLS_KEY (both or neither), and LEDGER_TLS_CLIENT_CA, which
    needs them: its clients must present a certificate it signed (mutual TLS)."""
    cert, key = env.get("LEDGER_TLS_CERT", ""), env.get("LEDGER_TLS_KEY", "")
    client_ca = env.get("LEDGER_TLS_CLIENT_CA", "")
    if bool(cert) != bool(key):
        raise ConfigError("LEDGER_TLS_CERT and LEDGER_TLS_KEY go together: set both "
                          "(the certificate chain and its private key, PEM files) or neither")
    if client_ca and not cert:
        raise ConfigError("LEDGER_TLS_CLIENT_CA needs LEDGER_TLS_CERT and LEDGER_TLS_KEY: "
                          "mutual TLS is TLS with client certificates")
    return {"tls_cert": cert, "tls_key": key, "tls_client_ca": client_ca}


def projections_mode(value: str) -> str:
    """``inline``: each server keeps the read models current itself; ``external``: a separate
    ``ledger project`` process does, and servers only read them."""
    if value not in ("inline", "external"):
        raise ConfigError(f"LEDGER_PROJECTIONS={value!r}: use inline or external")
    return value


def database_url(value: str) -> str:
    """LEDGER_DATABASE_URL, checked as event_store_env reads it (without creating a thing)."""
    event_store_env(value, create=False)
    return value


def event_store_env(database_url: str, *, create: bool = True) -> dict[str, str]:
    """Translates a database URL into the eventsourcing library's settings; ``create``
    makes a SQLite file's folder."""
    url = urlparse(database_url)
    if url.scheme == "sqlite":
        path = unquote(url.path[1:] if url.path.startswith("/") else url.path)
        if not path:
            raise ConfigError(f"LEDGER_DATABASE_URL={database_url}: a sqlite URL needs a file "
                              "path: sqlite:///path/to/ledger.sqlite3")
        if path != ":memory:" and create:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path,
                "SQLITE_LOCK_TIMEOUT": "30", "TRANSCODER_TOPIC": TRANSCODER,
                # The library's recorder, writing the audit trees beside the log.
                "APPLICATION_RECORDER_TOPIC":
                    "ledger.adapters.sqlite_recorder:LedgerSQLiteRecorder"}
    if url.scheme in ("postgres", "postgresql"):
        return postgres_env(database_url)
    raise ConfigError(f"LEDGER_DATABASE_URL={redact(database_url)}: the scheme {url.scheme!r} "
                      "is not supported: use sqlite:/// or postgresql://")


# LEDGER_DATABASE_URL's own query parameters. Every other one is libpq's (sslmode,
# sslrootcert, application_name, connect_timeout, target_session_attrs…), passed to every
# connection the ledger makes; host, port, user, password and dbname stand for the URL's.
OWN_PARAMETERS = ("schema", "pool_size")
# Seconds libpq waits for a connection unless the URL says (connect_timeout): without it, a
# host that drops packets holds every connection for the system's TCP timeout, minutes.
CONNECT_TIMEOUT = "5"
# The libpq parameters, as a conninfo string, in the eventsourcing library's settings.
LIBPQ_PARAMETERS = "LEDGER_POSTGRES_PARAMETERS"


def postgres_env(database_url: str) -> dict[str, str]:
    """The settings of the eventsourcing library's PostgreSQL store, from a libpq URL:
    postgresql://user:password@host:5432/dbname?sslmode=require&schema=acme, several
    hosts (host1:5432,host2:5432) and libpq's query parameters included."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import make_conninfo

    def refuse(why: str) -> ConfigError:
        return ConfigError(f"LEDGER_DATABASE_URL={redact(database_url)}: {why}")

    url = urlparse(database_url)
    query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
    userinfo, _, hostlist = url.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    hosts, ports = [], []
    for part in hostlist.split(","):
        host, port = re.fullmatch(r"(\[[^\]]*\]|[^:]*)(?::(.*))?", part).groups()  # type: ignore[union-attr]
        if port and not port.isdigit():
            raise refuse(f"the port {port!r} is not a number")
        hosts.append(unquote(host.strip("[]")) or "127.0.0.1")
        ports.append(port or "5432")
    dbname = unquote(url.path.lstrip("/")) or query.pop("dbname", "")
    if not dbname:
        raise refuse("a postgresql URL needs a database name: postgresql://host:5432/dbname")
    pool_size = query.pop("pool_size", "10")
    if not pool_size.isdigit() or int(pool_size) < 1:
        raise refuse(f"pool_size={pool_size!r}: use a whole number from 1")
    env = {
        "PERSISTENCE_MODULE": POSTGRES_FACTORY,
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": query.pop("host", ",".join(hosts)),
        "POSTGRES_PORT": query.pop("port", ",".join(ports)),
        "POSTGRES_USER": query.pop("user", unquote(user) or "postgres"),
        "POSTGRES_PASSWORD": query.pop("password", unquote(password)),
        "POSTGRES_LOCK_TIMEOUT": "30",
        # How long a call waits for a connection from the pool (the library's default is
        # 30 s, for which every call hung while the database was away).
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "POSTGRES_POOL_SIZE": pool_size,
        # Inserts take a lock (not the library's lock-free database function), so log
        # positions become visible in commit order and the projection runner can never
        # read past an event that has yet to commit.
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        # The library's recorder with a cheaper batch insert and the audit trees (see
        # pg_recorder.py).
        "APPLICATION_RECORDER_TOPIC": "ledger.adapters.pg_recorder:LedgerPostgresRecorder",
        "TRANSCODER_TOPIC": TRANSCODER,
    }
    if "schema" in query:
        env["POSTGRES_SCHEMA"] = query.pop("schema")
    query.setdefault("connect_timeout", CONNECT_TIMEOUT)
    try:
        env[LIBPQ_PARAMETERS] = make_conninfo("", **query)
    except ProgrammingError as error:  # a parameter libpq does not know
        raise refuse(f"{str(error).strip()}: the URL takes libpq's parameters (sslmode, "
                     f"application_name, connect_timeout…) and "
                     f"{' and '.join(OWN_PARAMETERS)}") from None
    return env


# How events are written: JSON by orjson, with the domain's value objects.
TRANSCODER = "ledger.adapters.transcodings:LedgerTranscoder"
# The library's PostgreSQL store, with the URL's libpq parameters on every connection.
POSTGRES_FACTORY = "ledger.adapters.pg_connections:LedgerPostgresFactory"


def is_postgres(env: Mapping[str, str]) -> bool:
    return "POSTGRES_DBNAME" in env


def postgres_address(env: Mapping[str, str]) -> str:
    """host:port (hosts and ports, for a URL with several), for messages."""
    hosts, ports = env["POSTGRES_HOST"].split(","), env["POSTGRES_PORT"].split(",")
    return ",".join(f"{h}:{p}" for h, p in zip(hosts, ports * len(hosts), strict=False))


def postgres_connection(env: Mapping[str, str]) -> dict[str, str | None]:
    """psycopg.connect's arguments for the store ``env`` describes: what every connection
    the ledger makes to it is made with."""
    from psycopg.conninfo import conninfo_to_dict

    return {"dbname": env["POSTGRES_DBNAME"], "host": env["POSTGRES_HOST"],
            "port": env["POSTGRES_PORT"], "user": env["POSTGRES_USER"],
            "password": env["POSTGRES_PASSWORD"] or None,
            **{k: str(v) for k, v in conninfo_to_dict(env.get(LIBPQ_PARAMETERS, "")).items()}}


def redact(database_url: str) -> str:
    """The URL with its password shown as ***, for messages and logs."""
    scheme, separator, rest = database_url.partition("://")
    if not separator:
        return database_url
    at = rest.split("?", 1)[0].rfind("@")
    if at >= 0 and ":" in rest[:at]:
        rest = rest[:at].split(":", 1)[0] + ":***" + rest[at:]
    return scheme + separator + re.sub(r"(?<=[?&])password=[^&]*", "password=***", rest)
