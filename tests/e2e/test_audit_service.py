"""The AuditService and the live audit commands, over a real server: who may read, what the
stream holds, proofs checked with RFC 9162's algorithms, heads bound to day statements, and
the worked example exported, verified and replayed to DOMAIN.md's figures and to what
ReportService shows."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from uuid import UUID

import grpc
import pytest
from ledger.clients.audit_live import AuditClient, head_of
from ledger.clients.sdk import idempotency_key

from ledger.audit.entries import Entry
from ledger.audit.merkle import root_of, verify_consistency, verify_inclusion
from ledger.audit.signing import verify_head
from ledger.v1 import audit_pb2, finance_pb2, report_pb2, storefront_pb2
from tests.conftest import Clock, Running
from tests.e2e.test_cli import LEDGER
from tests.helpers import enroll, pay, place, refund, refused, team


def audit_cli(running: Running, *args: str | Path, key: str = ""
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LEDGER, "audit", *map(str, args), "--address", running.target, "--api-key",
         key or running.keys.auditor], capture_output=True, text=True, timeout=120)


def worked_example(running: Running, clock: Clock) -> None:
    """DOMAIN.md: Alice ← Bob ← Carol, O1 paid 9999, refunded 3333 then 6666; the day
    closed (a head signed over it)."""
    with running.client(running.keys.shop_a) as shop, \
            running.client(running.keys.finance) as fin:
        team(shop)
        place(shop, "O1")
        pay(shop, "O1")
        refund(shop, "O1", "r1", (1, 3333))
        clock.advance(days=1)
        fin.finance.CloseDay(finance_pb2.CloseDayRequest(idempotency_key="close-1",
                                                         day="2026-11-01"), timeout=60)
        refund(shop, "O1", "r2", (1, 6666))


def test_an_auditor_key_reads_everything_of_its_platform_and_writes_nothing(
    running: Running,
) -> None:
    with running.client(running.keys.shop_a) as shop:
        team(shop)
    with running.client(running.keys.auditor) as auditor:
        assert auditor.report.GetBalance(report_pb2.GetBalanceRequest(
            account="reseller:carol")) is not None
        assert auditor.finance.ListPayable(finance_pb2.ListPayableRequest()) is not None
        assert auditor.audit.GetSignedHead(audit_pb2.GetSignedHeadRequest()).head.tree_size > 0
        for write in (
            lambda: auditor.storefront.PlaceOrder(storefront_pb2.PlaceOrderRequest(
                idempotency_key=idempotency_key(), order_id="X", currency="CNY")),
            lambda: auditor.finance.RequestPayout(finance_pb2.RequestPayoutRequest(
                idempotency_key=idempotency_key(), account="reseller:carol", currency="CNY",
                amount=1000)),
            lambda: auditor.finance.CloseDay(finance_pb2.CloseDayRequest(
                idempotency_key=idempotency_key(), day="2026-10-31")),
        ):
            assert refused(write).code == grpc.StatusCode.PERMISSION_DENIED
    with running.client(running.keys.shop_a) as shop:  # storefronts see no one's log
        assert refused(lambda: shop.audit.GetSignedHead(
            audit_pb2.GetSignedHeadRequest())).code == grpc.StatusCode.PERMISSION_DENIED


def test_the_stream_is_the_platforms_log_in_order_and_nothing_of_another_platform(
    running: Running,
) -> None:
    with running.client(running.keys.shop_a) as shop, \
            running.client(running.keys.other_platform_shop) as other:
        team(shop)
        enroll(other, "zed", without_sponsor=True)
        place(shop, "O1")
    with running.client(running.keys.auditor) as acme, \
            running.client(running.keys.other_platform_auditor) as globex:
        mine = [e for page in acme.audit.StreamEvents(audit_pb2.StreamEventsRequest(
            page_size=2)) for e in page.entries]
        theirs = [e for page in globex.audit.StreamEvents(audit_pb2.StreamEventsRequest())
                  for e in page.entries]
        assert [e.seq for e in mine] == list(range(len(mine)))
        positions = [e.log_position for e in mine]
        assert positions == sorted(positions)
        assert not set(positions) & {e.log_position for e in theirs}
        assert all(b"zed" not in e.state for e in mine)
        assert any(b"zed" in e.state for e in theirs)
        # Each leaf recomputes from the entry's content, and they make the signed root.
        leaves = [Entry("acme", e.seq, e.log_position, e.recorded_at_us,
                        UUID(bytes=e.stream_id), e.version, e.topic, e.state).leaf_hash()
                  for e in mine]
        assert leaves == [e.leaf_hash for e in mine]
        head = acme.audit.GetSignedHead(audit_pb2.GetSignedHeadRequest()).head
        keys = {k.key_id: k.public_key for k in
                acme.audit.GetPublicKeys(audit_pb2.GetPublicKeysRequest()).keys}
        assert head.tree_size == len(mine) and head.root == root_of(leaves)
        assert verify_head(head_of(head), keys)


def test_inclusion_and_consistency_proofs_verify_against_signed_heads(
    running: Running,
) -> None:
    with running.client(running.keys.shop_a) as shop:
        team(shop)
        with running.client(running.keys.auditor) as auditor:
            first = head_of(auditor.audit.GetSignedHead(audit_pb2.GetSignedHeadRequest()).head)
            for n in range(5):
                place(shop, f"O{n}")
                pay(shop, f"O{n}")
            second = head_of(auditor.audit.GetSignedHead(audit_pb2.GetSignedHeadRequest()).head)
            assert second.tree_size > first.tree_size
            entries = [e for page in auditor.audit.StreamEvents(audit_pb2.StreamEventsRequest())
                       for e in page.entries]
            for e in entries[:second.tree_size]:
                proof = auditor.audit.GetInclusionProof(audit_pb2.GetInclusionProofRequest(
                    seq=e.seq, tree_size=second.tree_size))
                assert verify_inclusion(e.seq, second.tree_size, e.leaf_hash, list(proof.path),
                                        second.root)
                assert not verify_inclusion(e.seq, second.tree_size, b"\x00" * 32,
                                            list(proof.path), second.root)
            consistency = auditor.audit.GetConsistencyProof(audit_pb2.GetConsistencyProofRequest(
                first_size=first.tree_size, second_size=second.tree_size))
            assert consistency.first_root == first.root
            assert verify_consistency(first.tree_size, second.tree_size, first.root,
                                      second.root, list(consistency.path))
            too_far = refused(lambda: auditor.audit.GetInclusionProof(
                audit_pb2.GetInclusionProofRequest(seq=0, tree_size=second.tree_size + 10**6)))
            assert too_far.code == grpc.StatusCode.INVALID_ARGUMENT
            assert "tree_size" in too_far.fields
    # And as an auditor runs them, from the CLI.
    proved = audit_cli(running, "prove", "--seq", "3")
    assert proved.returncode == 0 and "entry 3" in proved.stdout, proved.stderr
    since = audit_cli(running, "prove", "--since", f"{first.tree_size}:{first.root.hex()}")
    assert since.returncode == 0, since.stdout + since.stderr
    forged = audit_cli(running, "prove", "--since", f"{first.tree_size}:{'00' * 32}")
    assert forged.returncode == 1 and "does not extend" in forged.stdout


def test_a_closed_days_statement_names_a_head_signed_over_the_history_it_was_drawn_from(
    running: Running, clock: Clock,
) -> None:
    worked_example(running, clock)
    with running.client(running.keys.auditor) as auditor:
        statement = auditor.finance.GetDayStatement(finance_pb2.GetDayStatementRequest(
            day="2026-11-01")).statement
        keys = {k.key_id: k.public_key for k in
                auditor.audit.GetPublicKeys(audit_pb2.GetPublicKeysRequest()).keys}
        head = head_of(statement.head)
        assert statement.closed and head.tree_size > 0 and verify_head(head, keys)
        heads = auditor.audit.ListSignedHeads(audit_pb2.ListSignedHeadsRequest()).heads
        assert any(h.root == head.root and h.reason == "close 2026-11-01" for h in heads)
        entries = [e for page in auditor.audit.StreamEvents(audit_pb2.StreamEventsRequest())
                   for e in page.entries]
        # The head covers the day's whole history and not the refund made after the close.
        assert root_of([e.leaf_hash for e in entries[:head.tree_size]]) == head.root
        assert any(b'"r2"' in e.state for e in entries[head.tree_size:])


def test_the_worked_example_exported_verified_and_replayed_equals_domain_and_report_service(
    running: Running, clock: Clock, tmp_path: Path,
) -> None:
    worked_example(running, clock)
    path = tmp_path / "acme.audit.jsonl"
    exported = audit_cli(running, "export", path)
    assert exported.returncode == 0, exported.stderr
    with running.client(running.keys.auditor) as auditor:
        published = [base64.b64encode(k.public_key).decode() for k in
                     auditor.audit.GetPublicKeys(audit_pb2.GetPublicKeysRequest()).keys]
    verified = subprocess.run([LEDGER, "audit", "verify", str(path), "--key", published[0]],
                              capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout
    replayed = subprocess.run([LEDGER, "audit", "replay", str(path), "--json"],
                              capture_output=True, text=True, timeout=120)
    assert replayed.returncode == 0, replayed.stdout
    report = json.loads(replayed.stdout)
    balances = {(b["account"], b["bucket"]): b["amount"] for b in report["balances"]}
    # DOMAIN.md: after both refunds every share is back to zero.
    for account in ("reseller:carol", "reseller:bob", "supplier:S1", "platform"):
        assert balances.get((account, "frozen"), 0) == 0, account
    assert [d["day"] for d in report["days"]] == ["2026-11-01"]
    assert report["days"][0]["differences"] == 0 and report["days"][0]["lines"] > 0
    # The same from the server, and compared with ReportService's balances.
    live = audit_cli(running, "replay", "--live")
    assert live.returncode == 0, live.stdout
    live_verify = audit_cli(running, "verify", "--live", "--key", published[0])
    assert live_verify.returncode == 0, live_verify.stdout


def test_the_split_on_payment_replays_to_the_fen(running: Running, tmp_path: Path) -> None:
    """Before any refund: Carol 1599, Bob 399, the supplier 6000, the platform 2001."""
    with running.client(running.keys.shop_a) as shop:
        team(shop)
        place(shop, "O1")
        pay(shop, "O1")
    with running.client(running.keys.auditor) as auditor:
        from ledger.audit.replay import replay

        report = replay(AuditClient(auditor).records())
    frozen = {account: amount for (account, _, bucket), amount in report.balances.items()
              if bucket == "frozen"}
    assert frozen == {"supplier:S1": 6000, "reseller:carol": 1599, "reseller:bob": 399,
                      "platform": 2001}
    assert report.ok


@pytest.mark.postgres
def test_entries_written_by_concurrent_servers_make_one_consistent_tree(
    running: Running,
) -> None:
    """Eight clients writing at once into one platform: the tree's seqs have no gap or
    repeat and its stored leaves give the signed root."""
    from concurrent.futures import ThreadPoolExecutor

    with running.client(running.keys.shop_a) as shop:
        enroll(shop, "alice", without_sponsor=True)

        def write(n: int) -> None:
            place(shop, f"C{n}", reseller="alice")
            pay(shop, f"C{n}")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, range(40)))
    with running.client(running.keys.auditor) as auditor:
        from ledger.audit.verify import verify

        assert verify(AuditClient(auditor).records()).ok


# --- a superuser rewrites the database behind the guards -----------------------------------


TAMPERING = {
    # The forgery: a reseller's share on a Paid event, 1599 → 91599.
    "alter": "UPDATE {events} SET state = convert_to(replace(convert_from(state, 'UTF8'), "
             "',1599]', ',91599]'), 'UTF8') WHERE notification_id = {position}",
    "delete": "DELETE FROM {events} WHERE notification_id = {position}",
}


@pytest.mark.postgres
@pytest.mark.parametrize("tampering", sorted(TAMPERING))
def test_a_superuser_rewriting_the_log_is_named_by_verify_live_and_at_server_start(
    postgres_url: str, clock: Clock, tmp_path: Path, tampering: str,
) -> None:
    import psycopg

    from ledger.api.server import LedgerServer, ServerThread
    from ledger.config import Settings
    from tests.conftest import Keys
    from tests.processes import serve

    keys = Keys()
    settings = Settings(database_url=f"{postgres_url}&pool_size=2", listen="127.0.0.1:0",
                        audit_key_file=str(tmp_path / "audit-signing-key.pem"))
    schema = postgres_url.rsplit("schema=", 1)[1]
    events = f'"{schema}".ledger_events'
    with ServerThread(LedgerServer(settings, keys.ring(), clock=clock)) as thread:
        running = Running(thread.target, keys, thread.server)
        with running.client(keys.shop_a) as shop:
            team(shop)
            place(shop, "O1")
            pay(shop, "O1")
        with running.client(keys.auditor) as auditor:
            auditor.audit.GetSignedHead(audit_pb2.GetSignedHeadRequest())
        with psycopg.connect(postgres_url.split("?", 1)[0], autocommit=True) as conn:
            position, seq = conn.execute(
                f"SELECT e.notification_id, a.seq FROM {events} e JOIN \"{schema}\"."
                "audit_entries a ON a.position = e.notification_id WHERE e.topic LIKE "
                "'%Order.Paid'").fetchone()
            conn.execute(f"ALTER TABLE {events} DISABLE TRIGGER ALL")  # as a superuser may
            conn.execute(TAMPERING[tampering].format(events=events, position=position))
            conn.execute(f"ALTER TABLE {events} ENABLE ALWAYS TRIGGER ledger_events_append_only")
            conn.execute(f"ALTER TABLE {events} ENABLE ALWAYS TRIGGER "
                         "ledger_events_append_only_truncate")
        found = audit_cli(running, "verify", "--live")
        assert found.returncode == 1, found.stdout + found.stderr
        first = next(line for line in found.stdout.splitlines() if line.startswith("FAILED"))
        assert f"entry {seq}" in first, found.stdout
    server, _ = serve(tmp_path, postgres_url, keys,
                      LEDGER_AUDIT_KEY_FILE=str(tmp_path / "audit-signing-key.pem"))
    assert server.popen is not None
    assert server.popen.wait(timeout=60) == 2
    refusal = server.output.strip().splitlines()
    assert len(refusal) == 1 and f"entry {seq}" in refusal[0], server.output
    assert "Traceback" not in server.output
