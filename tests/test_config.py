"""Settings from the environment: defaults that run on a laptop, clear refusals otherwise."""

from __future__ import annotations

import pytest

from ledger.config import ConfigError, Settings, event_store_env


def test_defaults_run_on_sqlite_in_a_local_file() -> None:
    settings = Settings.from_env({})
    assert settings.database_url.startswith("sqlite:///")
    assert (settings.listen, settings.projections, settings.timezone) == (
        "127.0.0.1:50051", "inline", "Asia/Shanghai")


def test_postgres_is_one_setting() -> None:
    env = event_store_env("postgresql://app:s%40cret@db.internal:6543/ledger?schema=acme")
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
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
