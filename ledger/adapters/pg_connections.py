"""The eventsourcing library's PostgreSQL store, connected as LEDGER_DATABASE_URL says.

The library builds its connection pool from fixed settings (database, host, port, user,
password), so a URL's ``sslmode=require`` or ``application_name`` was dropped without a
word. This factory, named by PERSISTENCE_MODULE (see config.event_store_env), adds the URL's
libpq parameters to every connection the pool makes, as the read models' own connections
and bootstrap's have them (config.postgres_connection).
"""

from __future__ import annotations

from eventsourcing.postgres import PostgresFactory
from eventsourcing.utils import Environment, EnvType
from psycopg.conninfo import conninfo_to_dict

from ledger.config import LIBPQ_PARAMETERS


class LedgerPostgresFactory(PostgresFactory):
    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        parameters = conninfo_to_dict(self.env.get(LIBPQ_PARAMETERS) or "")
        kwargs = self.datastore.pool.kwargs
        assert isinstance(kwargs, dict)  # the library passes a dict it made itself
        kwargs.update(parameters)
