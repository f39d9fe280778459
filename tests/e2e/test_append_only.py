"""The database refuses to rewrite the ledger's history (issue 14), as processes see it: a
server refuses to start over a history whose guards are gone until `ledger db init` puts them
back, and `ledger db init` makes a service role the server then serves as. The guards and the
service role's privileges on the stores themselves are in
tests/integration/test_append_only.py.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest

from ledger.adapters.append_only import (
    AUDIT_TABLES,
    require_guards,
)
from ledger.bootstrap import build_application
from ledger.v1 import storefront_pb2
from tests.conftest import POSTGRES_URL, Keys, drop_schema
from tests.e2e.test_startup_refusals import PASSWORD, refusal
from tests.helpers import pay, place, shares, team
from tests.integration.test_append_only import drop_role, owner_sql, schema_of
from tests.processes import LEDGER, START_TIMEOUT, Started, serve, serving, wait_until


def test_a_server_over_a_store_whose_guard_was_dropped_refuses_to_start(
    store_url: str, tmp_path: Path,
) -> None:
    """A restart as the owner does not put the guard back: the refusal shows the store was
    tampered with (or predates the guards) until the owner runs `ledger db init`."""
    build_application(store_url).close()
    postgres = not store_url.startswith("sqlite")
    with owner_sql(store_url) as conn:
        conn.execute(f"DROP TRIGGER ledger_events_append_only_truncate ON "
                     f"{schema_of(store_url)}.ledger_events" if postgres
                     else "DROP TRIGGER stored_events_append_only_delete")
    url = f"{store_url}&pool_size=2" if postgres else store_url
    events = "ledger_events" if postgres else "stored_events"
    for command in (("serve",), ("project",)):
        line = refusal({"LEDGER_DATABASE_URL": url}, *command, cwd=tmp_path)
        assert f"{events} has no append-only guard" in line, line
        assert "run `ledger db init`" in line, line
    done = subprocess.run([LEDGER, "db", "init"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LEDGER_DATABASE_URL": url}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"guards installed now on {events}" in done.stdout
    app = build_application(url)
    try:
        require_guards(app)
    finally:
        app.close()


@pytest.mark.postgres
def test_db_init_then_serve_as_the_service_role_end_to_end(
    postgres_url: str, tmp_path: Path,
) -> None:
    """`ledger db init` prints the URL to serve with; `ledger serve` on it writes an order
    and reads it back, and `ledger projections rebuild` on it rebuilds the read models. The
    owner's password appears nowhere, and the service role's only because it was typed on
    the command line."""
    role = f"ledger_svc_{uuid.uuid4().hex[:12]}"
    owner_url = postgres_url.replace("postgresql://postgres@",
                                     f"postgresql://postgres:{PASSWORD}@") + "&pool_size=2"
    started = Started()
    try:
        done = subprocess.run(
            [LEDGER, "db", "init", "--owner-url", owner_url, "--service-role", role,
             "--service-password", "typed-pw"], capture_output=True, text=True, timeout=120,
            cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert PASSWORD not in done.stdout + done.stderr
        service_url = done.stdout.strip().splitlines()[-1].removeprefix("LEDGER_DATABASE_URL=")
        assert service_url == (f"postgresql://{role}:typed-pw@127.0.0.1:5432/test?"
                               f"schema={schema_of(postgres_url)}&pool_size=2")
        keys = Keys()
        server, address = serve(tmp_path, service_url, keys)
        started.add(server)
        wait_until(lambda: serving(address) or (not server.alive() and server.output),
                   "the server to serve", timeout=START_TIMEOUT)
        assert server.alive(), server.output
        from ledger.clients.sdk import LedgerClient

        with LedgerClient(address, keys.shop_a) as shop:
            team(shop)
            place(shop, "O1")
            pay(shop, "O1")
            order = shop.storefront.GetOrder(
                storefront_pb2.GetOrderRequest(order_id="O1")).order
        assert shares(order)["reseller:carol"] == 1599
        assert server.stop() == 0
        rebuilt = subprocess.run([LEDGER, "projections", "rebuild"], capture_output=True,
                                 text=True, timeout=120, cwd=tmp_path,
                                 env={**os.environ, "LEDGER_DATABASE_URL": service_url})
        assert rebuilt.returncode == 0, rebuilt.stderr
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            owners = dict(conn.execute(
                "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = %s",
                (schema_of(postgres_url),)).fetchall())
        # The service owns the read models, and nothing of the history.
        assert {owner for table, owner in owners.items() if table.startswith("proj_")} == {role}
        assert {owner for table, owner in owners.items()
                if table == "ledger_events" or table in AUDIT_TABLES} == {"postgres"}
    finally:
        started.kill_all()
        drop_schema(postgres_url)
        drop_role(role)


