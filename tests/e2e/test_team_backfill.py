"""A platform moving onto the ledger brings its tree with the dates its people joined
(DOMAIN.md, "Team numbers", Backfill): an enrolment may carry a past date, never in the
future and not before its sponsor's; an order cannot be paid before its seller enrolled.

Over gRPC (EnrollReseller with enrolled_at, ImportResellers) and `ledger team import`; the
rules on the domain are in tests/unit/test_team_backfill.py, through the application on
SQLite and PostgreSQL in tests/integration/test_team_backfill.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from ledger.clients.sdk import LedgerClient, idempotency_key
from ledger.clients.simulator import line

from ledger.domain.errors import LedgerError
from ledger.v1 import admin_pb2, report_pb2, storefront_pb2
from tests.conftest import Clock, Running
from tests.e2e.test_cli import LEDGER, free_port, wait_healthy
from tests.helpers import refused
from tests.tree_import import Member, generated_tree, import_tree
from tests.unit.test_team_backfill import JOINED

# --- over gRPC -------------------------------------------------------------------------------


def stamp(at: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(at)
    return t


def test_enroll_reseller_takes_a_past_date(shop: LedgerClient, clock: Clock) -> None:
    def enrol(reseller_id: str, sponsor_id: str, at: datetime
              ) -> storefront_pb2.EnrollResellerResponse:
        return shop.storefront.EnrollReseller(storefront_pb2.EnrollResellerRequest(
            idempotency_key=idempotency_key(), reseller_id=reseller_id, sponsor_id=sponsor_id,
            without_sponsor=not sponsor_id, enrolled_at=stamp(at)))

    alice = enrol("alice", "", JOINED).reseller
    assert alice.enrolled_at.ToDatetime(tzinfo=UTC) == JOINED
    future = refused(lambda: enrol("bob", "alice", clock.now + timedelta(days=1)))
    assert future.code == grpc.StatusCode.INVALID_ARGUMENT and "enrolled_at" in future.fields
    early = refused(lambda: enrol("bob", "alice", JOINED - timedelta(days=1)))
    assert (early.code, early.reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                          "ENROLLED_BEFORE_SPONSOR")
    assert "2025-03-09" in early.message and "2025-03-10" in early.message
    undated = shop.storefront.EnrollReseller(storefront_pb2.EnrollResellerRequest(
        idempotency_key=idempotency_key(), reseller_id="bob", sponsor_id="alice")).reseller
    assert undated.enrolled_at.ToDatetime(tzinfo=UTC) == clock.now


def imported(reseller_id: str, sponsor_id: str, at: datetime, rank: str = ""
             ) -> storefront_pb2.ImportedReseller:
    return storefront_pb2.ImportedReseller(reseller_id=reseller_id, sponsor_id=sponsor_id,
                                           rank=rank, enrolled_at=stamp(at))


def import_members(shop: LedgerClient, *messages: list[storefront_pb2.ImportedReseller]
                   ) -> storefront_pb2.ImportResellersResponse:
    return shop.storefront.ImportResellers(iter([
        storefront_pb2.ImportResellersRequest(members=members) for members in messages]))


def test_import_resellers_takes_a_member_before_its_sponsor_in_one_message(
        shop: LedgerClient, admin: LedgerClient) -> None:
    day = timedelta(days=1)
    reply = import_members(shop, [imported("carol", "bob", JOINED + 2 * day),
                                  imported("bob", "alice", JOINED + day, rank="gold"),
                                  imported("alice", "", JOINED)])
    assert (reply.members, reply.imported, reply.already_imported) == (3, 3, 0)
    assert not reply.failures
    got = {rid: admin.admin.GetReseller(admin_pb2.GetResellerRequest(reseller_id=rid)).reseller
           for rid in ("alice", "bob", "carol")}
    assert {rid: (r.sponsor_id, r.rank, r.enrolled_at.ToDatetime(tzinfo=UTC))
            for rid, r in got.items()} == {"alice": ("", "", JOINED),
                                           "bob": ("alice", "gold", JOINED + day),
                                           "carol": ("bob", "", JOINED + 2 * day)}


def test_a_resent_import_writes_nothing_twice(shop: LedgerClient, running: Running) -> None:
    members = generated_tree(30, first=JOINED, last=JOINED + timedelta(days=200), seed=3)
    first = import_tree(shop, members, per_message=7)
    assert first.already_imported == 0 and first.receipt.log_position > 0
    head = running.server.app.log_position()
    again = import_tree(shop, list(reversed(members)))  # one message, members before sponsors
    assert (again.imported, again.already_imported) == (30, 30)
    assert running.server.app.log_position() == head
    assert again.receipt.log_position == first.receipt.log_position


def test_import_resellers_reports_each_refused_member(
        shop: LedgerClient, running: Running, clock: Clock) -> None:
    day = timedelta(days=1)
    import_members(shop, [imported("alice", "", JOINED)])
    reply = import_members(
        shop,
        [imported("future", "alice", clock.now + day),
         imported("early", "alice", JOINED - day),
         imported("orphan", "nobody", JOINED + day),
         imported("x", "y", JOINED + day), imported("y", "x", JOINED + day),
         imported("under-early", "early", JOINED + 2 * day),
         imported("bob", "alice", JOINED + day)],
        [imported("alice", "", JOINED, rank="changed"),  # other details than first imported
         imported("carol", "bob", JOINED + 2 * day)])   # its sponsor came in a message before
    assert (reply.members, reply.imported, reply.already_imported) == (9, 2, 0)
    assert {f.reseller_id: (f.code, f.reason) for f in reply.failures} == {
        "future": ("INVALID_ARGUMENT", "INVALID_INPUT"),
        "early": ("FAILED_PRECONDITION", "ENROLLED_BEFORE_SPONSOR"),
        "orphan": ("NOT_FOUND", "SPONSOR_NOT_FOUND"),
        "x": ("FAILED_PRECONDITION", "SPONSOR_CYCLE"),
        "y": ("FAILED_PRECONDITION", "SPONSOR_CYCLE"),
        "under-early": ("NOT_FOUND", "SPONSOR_NOT_FOUND"),
        "alice": ("FAILED_PRECONDITION", "IDEMPOTENCY_KEY_REUSED"),
    }
    messages = {f.reseller_id: f.message for f in reply.failures}
    assert messages["future"].startswith("enrolled_at: must not be in the future")
    assert "before its sponsor alice" in messages["early"]
    assert messages["x"].endswith("x → y → x")
    too_many = refused(lambda: import_members(
        shop, [imported(f"m{n}", "alice", JOINED + day) for n in range(1001)]))
    assert too_many.code == grpc.StatusCode.INVALID_ARGUMENT and "members" in too_many.fields
    with pytest.raises(LedgerError):  # nothing of that message was written
        running.server.app.reseller("acme", "m0")


def test_a_tree_brought_in_has_members_at_the_start_of_past_months(
        shop: LedgerClient, clock: Clock) -> None:
    """The issue's symptom: with every member joining on the day of the migration, the
    members at the start of every past month were 0, and retention 0 over 0 forever. (Carol
    comes in a second import, after Dan who joined later: the log order does not matter.)"""
    import_tree(shop, [Member("alice", "", datetime(2026, 6, 3, tzinfo=UTC)),
                       Member("bob", "alice", datetime(2026, 7, 4, tzinfo=UTC)),
                       Member("dan", "alice", datetime(2026, 9, 6, tzinfo=UTC))])
    reply = import_tree(shop, [Member("carol", "bob", datetime(2026, 8, 5, tzinfo=UTC))])
    paid = datetime(2026, 9, 20, 4, 0, tzinfo=UTC)
    sold = shop.storefront.ImportOrders(iter([storefront_pb2.ImportOrdersRequest(orders=[
        storefront_pb2.ImportedOrder(order_id="S1", customer_id="c1", reseller_id="carol",
                                     currency="CNY", lines=[line("tea", 3, 3333, 2000)],
                                     payment_id="w1", paid_at=stamp(paid))])]))
    assert sold.imported == 1, sold.failures
    stats = shop.report.GetTeamStats(report_pb2.GetTeamStatsRequest(
        reseller_id="alice", month="2026-09",
        min_log_position=max(reply.receipt.log_position, sold.receipt.log_position)))
    assert (stats.members_at_start, stats.new_members, stats.active_members,
            stats.retention_bps) == (2, 1, 1, 5000)


# --- ledger team import, against a served ledger ---------------------------------------------


@pytest.fixture
def served(store_url: str, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """`ledger serve` over the store under test: its address, a storefront and an admin key."""
    from ledger.api.auth import add_key_to_file

    keys_file = tmp_path / "keys.json"
    key = add_key_to_file(keys_file, name="shop-a", role="storefront", platform="acme")
    admin_key = add_key_to_file(keys_file, name="ops", role="admin", platform="acme")
    address = f"127.0.0.1:{free_port()}"
    url = store_url if store_url.startswith("sqlite") else f"{store_url}&pool_size=2"
    env = {**os.environ, "LEDGER_LISTEN": address, "LEDGER_API_KEYS_FILE": str(keys_file),
           "LEDGER_DATABASE_URL": url,
           "LEDGER_AUDIT_KEY_FILE": str(tmp_path / "audit-key.pem")}
    server = subprocess.Popen([LEDGER, "serve"], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(address)
        yield address, key, admin_key
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def team_import(served: tuple[str, str, str], *args: str) -> subprocess.CompletedProcess[str]:
    address, key, _ = served
    return subprocess.run([LEDGER, "team", "import", *args, "--address", address],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LEDGER_STOREFRONT_KEY": key,
                               "LEDGER_TIMEZONE": "Asia/Shanghai"})


def test_team_import_brings_the_good_rows_in_and_sums_up_the_refused(
        served: tuple[str, str, str], tmp_path: Path) -> None:
    team = tmp_path / "team.csv"
    team.write_text(
        "reseller,sponsor,rank,enrolled_at\n"
        "carol,bob,,2024-05-01\n"                     # before its sponsor, listed first
        "bob,alice,gold,2024-03-02T09:30:00+08:00\n"
        "alice,,,2024-01-15\n"
        "erin,carol,,2024-06-01\n"
        "early,alice,,2023-12-31\n"                   # before its sponsor
        "under-early,early,,2024-02-01\n"             # its sponsor is refused
        "orphan,nobody,,2024-02-01\n"                 # its sponsor is nowhere
        "late,alice,,2099-01-01\n"                    # in the future
        "x,y,,2024-02-01\n"
        "y,x,,2024-02-01\n"
        "bob,alice,gold,2024-03-02\n",                # listed twice
        encoding="utf-8")
    done = team_import(served, str(team), "--refused", str(tmp_path / "refused.csv"))
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert f"{team}: 11 members" in out
    assert "imported: 4 (0 of them already there)" in out and "refused: 7" in out
    for reason in ("ENROLLED_BEFORE_SPONSOR (FAILED_PRECONDITION)",
                   "SPONSOR_REFUSED (NOT_FOUND)", "SPONSOR_NOT_FOUND (NOT_FOUND)",
                   "INVALID_INPUT (INVALID_ARGUMENT)", "LISTED_TWICE", "SPONSOR_CYCLE"):
        assert reason in out, (reason, out)
    assert "SPONSOR_CYCLE: sponsors in the file loop back on themselves: 2 members, e.g. x, y" \
        in out
    assert "early (line 6): early cannot enrol at 2023-12-30T16:00:00+00:00, before its " \
           "sponsor alice enrolled at 2024-01-14T16:00:00+00:00" in out
    assert "[" not in done.stderr  # not a terminal: no bar, and under 5,000 members no line
    refusals = (tmp_path / "refused.csv").read_text(encoding="utf-8-sig").splitlines()
    assert refusals[0] == "line,reseller,code,reason,message" and len(refusals) == 8
    with LedgerClient(served[0], served[2]) as admin:
        got = {rid: admin.admin.GetReseller(admin_pb2.GetResellerRequest(reseller_id=rid))
               .reseller for rid in ("alice", "bob", "carol", "erin")}
    assert {rid: (r.sponsor_id, r.rank, r.enrolled_at.ToDatetime().isoformat())
            for rid, r in got.items()} == {
        "alice": ("", "", "2024-01-14T16:00:00"),  # days begin in Asia/Shanghai
        "bob": ("alice", "gold", "2024-03-02T01:30:00"),
        "carol": ("bob", "", "2024-04-30T16:00:00"),
        "erin": ("carol", "", "2024-05-31T16:00:00")}
    again = team_import(served, str(team))
    assert again.returncode == 1 and "imported: 4 (4 of them already there)" in again.stdout


def test_team_import_exits_0_when_every_member_is_in(served: tuple[str, str, str],
                                                     tmp_path: Path) -> None:
    """Rows in the order of a platform's export (here members before their sponsors), in
    UTF-8 with a byte-order mark, the columns in an order of their own."""
    team = tmp_path / "team.csv"
    first = datetime(2024, 1, 1).date()
    rows = [f"{first + timedelta(days=n)},m{n},,{'m' + str((n - 1) // 3) if n else ''}"
            for n in reversed(range(40))]
    team.write_text("enrolled_at,reseller,rank,sponsor\n" + "\n".join(rows) + "\n",
                    encoding="utf-8-sig")
    done = team_import(served, str(team))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "imported: 40 (0 of them already there)" in done.stdout
    assert "refused: 0" in done.stdout


@pytest.mark.parametrize("text, says", [
    ("reseller,sponsor,rank\nalice,,,\n", "bad header: missing enrolled_at"),
    ("reseller,sponsor,rank,enrolled_at,name\n", "bad header: unknown 'name'"),
    ("reseller,sponsor,rank,enrolled_at\nalice,,,2024-13-01\n",
     "line 2: enrolled_at '2024-13-01' is not a date"),
    ("reseller,sponsor,rank,enrolled_at\nalice,,,2024-01-01,extra\n",
     "line 2: 5 fields, the header has 4"),
    ("", "is empty"),
])
def test_team_import_refuses_a_file_it_cannot_read_in_one_line(
        tmp_path: Path, text: str, says: str) -> None:
    """Exit 2 before anything is sent (no server is even needed)."""
    team = tmp_path / "team.csv"
    team.write_text(text, encoding="utf-8")
    done = subprocess.run([LEDGER, "team", "import", str(team), "--key", "k", "--address",
                           f"127.0.0.1:{free_port()}"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not done.stdout
