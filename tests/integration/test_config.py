"""Settings from the environment: defaults that run on a laptop, clear refusals otherwise."""

from __future__ import annotations

import uuid

import pytest
from ledger.projections.db import ProjectionDB

from ledger.bootstrap import build_application
from ledger.config import (
    CONNECT_TIMEOUT,
    ConfigError,
    Settings,
    event_store_env,
    is_postgres,
    postgres_address,
    postgres_connection,
    redact,
)


def test_defaults_run_on_sqlite_in_a_local_file() -> None:
    settings = Settings.from_env({})
    assert settings.database_url.startswith("sqlite:///")
    assert (settings.listen, settings.projections, settings.timezone) == (
        "127.0.0.1:50051", "inline", "Asia/Shanghai")


def test_postgres_is_one_setting() -> None:
    env = event_store_env("postgresql://app:s%40cret@db.internal:6543/ledger?schema=acme")
    assert is_postgres(env)
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_USER"],
            env["POSTGRES_PASSWORD"], env["POSTGRES_DBNAME"], env["POSTGRES_SCHEMA"]) == (
        "db.internal", "6543", "app", "s@cret", "ledger", "acme")
    assert env["POSTGRES_ENABLE_DB_FUNCTIONS"] == "n"


@pytest.mark.parametrize("env", [
    {"LEDGER_TIMEZONE": "Mars/Olympus"},
    {"LEDGER_PROJECTIONS": "sometimes"},
    {"LEDGER_BATCH_MAX": "lots"},
])
def test_bad_settings_are_refused_clearly(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(env)


def test_unknown_database_scheme_is_refused() -> None:
    with pytest.raises(ConfigError):
        event_store_env("mysql://localhost/ledger")


def test_libpq_parameters_in_the_url_are_kept_for_every_connection() -> None:
    env = event_store_env("postgresql://app:pw@db:6543/ledger?schema=acme&pool_size=3"
                          "&sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=ledger"
                          "&target_session_attrs=read-write&connect_timeout=2")
    assert (env["POSTGRES_SCHEMA"], env["POSTGRES_POOL_SIZE"]) == ("acme", "3")
    assert postgres_connection(env) == {
        "dbname": "ledger", "host": "db", "port": "6543", "user": "app", "password": "pw",
        "sslmode": "verify-full", "sslrootcert": "/etc/ca.pem", "application_name": "ledger",
        "target_session_attrs": "read-write", "connect_timeout": "2"}


def test_without_a_connect_timeout_a_connection_waits_seconds_not_minutes() -> None:
    assert postgres_connection(event_store_env("postgresql://db/ledger"))[
        "connect_timeout"] == CONNECT_TIMEOUT


def test_several_hosts_and_libpq_query_forms() -> None:
    env = event_store_env("postgresql://app@h1:5432,[::1]:5433/ledger")
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"]) == ("h1,::1", "5432,5433")
    assert postgres_address(env) == "h1:5432,::1:5433"
    socket_dir = event_store_env("postgresql:///ledger?host=/var/run/postgresql&password=pw")
    assert (socket_dir["POSTGRES_HOST"], socket_dir["POSTGRES_PASSWORD"]) == (
        "/var/run/postgresql", "pw")


@pytest.mark.parametrize("url, message", [
    ("postgresql://app:s3cret@db:port/ledger",
     "LEDGER_DATABASE_URL=postgresql://app:***@db:port/ledger: the port 'port' is not a "
     "number"),
    ("postgresql://app:s3cret@db/ledger?sslmde=require",
     "LEDGER_DATABASE_URL=postgresql://app:***@db/ledger?sslmde=require: invalid connection "
     "option \"sslmde\""),
    ("postgresql://app@db/ledger?password=s3cret&pool_size=0",
     "LEDGER_DATABASE_URL=postgresql://app@db/ledger?password=***&pool_size=0: pool_size='0'"),
    ("postgresql://app:s3cret@db/", "LEDGER_DATABASE_URL=postgresql://app:***@db/: a "
                                    "postgresql URL needs a database name"),
])
def test_a_bad_database_url_is_named_with_its_password_hidden(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"LEDGER_DATABASE_URL": url})
    assert str(refused.value).startswith(message)
    assert "s3cret" not in str(refused.value)


def test_redact_hides_a_password_with_an_at_sign() -> None:
    assert redact("postgresql://app:p@ss@db/ledger?application_name=a@b") == (
        "postgresql://app:***@db/ledger?application_name=a@b")
    assert redact("sqlite:///ledger-data/ledger.sqlite3") == "sqlite:///ledger-data/ledger.sqlite3"


def test_log_format_and_level_in_any_case_or_refused() -> None:
    settings = Settings.from_env({"LEDGER_LOG_FORMAT": "JSON", "LEDGER_LOG_LEVEL": "Warning"})
    assert (settings.log_format, settings.log_level) == ("json", "warning")
    for env in ({"LEDGER_LOG_FORMAT": "xml"}, {"LEDGER_LOG_LEVEL": "verbose"}):
        with pytest.raises(ConfigError):
            Settings.from_env(env)


@pytest.mark.parametrize("env", [
    {"LEDGER_WORKERS": "0"}, {"LEDGER_WORKERS": "1.5"}, {"LEDGER_BATCH_MAX": "-1"},
    {"LEDGER_BATCH_WAIT_MS": "nan"}, {"LEDGER_SETTLEMENT_INTERVAL": "-5"},
    {"LEDGER_LISTEN": "localhost"}, {"LEDGER_LISTEN": "127.0.0.1:99999"},
])
def test_numbers_and_addresses_out_of_their_range_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(env)


@pytest.mark.postgres
def test_the_event_store_and_the_read_models_connect_with_the_urls_parameters(
    postgres_url: str,
) -> None:
    """application_name reaches the eventsourcing library's pool and the read models'
    connections (bootstrap's: tests/test_startup_refusals.py)."""
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    url = f"{postgres_url}&pool_size=1&application_name={name}"
    app = build_application(url)
    models = ProjectionDB(url)
    conn = models.connect()
    try:
        with app.factory.datastore.get_connection() as pooled:  # type: ignore[attr-defined]
            row = pooled.execute("SELECT current_setting('application_name') AS name").fetchone()
        assert row == {"name": name}
        assert conn.execute("SELECT current_setting('application_name')").fetchone() == (name,)
    finally:
        conn.close()
        app.close()
