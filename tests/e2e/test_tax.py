"""Tax withheld on payouts to individuals, through gRPC on a clock of the test's own (DOMAIN.md
"Tax on commission paid to individuals": Dana's four payouts in 2026). Who may be paid, and
the quarter's report closed for good, are tested on the application in
tests/integration/test_tax_rules.py."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from ledger.clients.sdk import LedgerClient, idempotency_key
from ledger.clients.simulator import line

from ledger.adapters.identity_vault import Identity, VaultError, VaultFile, add_key
from ledger.domain.payee import SealedIdentity
from ledger.v1 import finance_pb2, report_pb2, storefront_pb2, tax_pb2
from tests.conftest import Clock, Running
from tests.e2e.test_settlement_payouts import Books, settle
from tests.helpers import enroll, place, refused

StatusCode = grpc.StatusCode
LEDGER = str(Path(sys.executable).parent / "ledger")
DANA = "reseller:dana"
DANA_ID = tax_pb2.PayeeIdentity(
    name="Dana Li", id_type="resident_id", id_number="11010519900307002X"
)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 1, 1, 2, tzinfo=UTC))


def record(
    finance: LedgerClient,
    account: str,
    kind: int = tax_pb2.PAYEE_KIND_INDIVIDUAL,
    identity: tax_pb2.PayeeIdentity | None = DANA_ID,
    tax_id: str = "",
    key: str = "",
) -> tax_pb2.RecordPayeeResponse:
    return finance.tax.RecordPayee(
        tax_pb2.RecordPayeeRequest(
            idempotency_key=key or idempotency_key(),
            account=account,
            kind=kind,
            tax_id=tax_id,
            identity=identity,
        )
    )


def dana_earns(shop: LedgerClient, admin: LedgerClient, clock: Clock, books: Books) -> None:
    """A sale on 2026-01-01 whose 40% earns Dana 76,000.00, settled on 01-09."""
    enroll(shop, "dana")
    place(shop, "D1", reseller="dana", lines=[line("sofa", 1, 20_000_000, 1_000_000)])
    books.saw(
        shop.storefront.PayOrder(
            storefront_pb2.PayOrderRequest(
                idempotency_key=idempotency_key(),
                order_id="D1",
                payment_id="w-D1",
                amount=20_000_000,
            )
        ).receipt
    )
    books.saw(
        shop.storefront.CompleteOrder(
            storefront_pb2.CompleteOrderRequest(idempotency_key=idempotency_key(), order_id="D1")
        ).receipt
    )
    clock.advance(days=8)
    assert settle(admin, books) == ["D1"]
    assert books.of(DANA) == {"available": 7_600_000}


def request(finance: LedgerClient, amount: int, books: Books) -> finance_pb2.Payout:
    reply = finance.finance.RequestPayout(
        finance_pb2.RequestPayoutRequest(
            idempotency_key=idempotency_key(), account=DANA, currency="CNY", amount=amount
        )
    )
    books.saw(reply.receipt)
    return reply.payout


def approve(finance: LedgerClient, payout_id: str) -> None:
    finance.finance.ApprovePayout(
        finance_pb2.ApprovePayoutRequest(idempotency_key=idempotency_key(), payout_id=payout_id)
    )


def paid(finance: LedgerClient, payout: finance_pb2.Payout, books: Books) -> finance_pb2.Payout:
    approve(finance, payout.payout_id)
    reply = finance.finance.MarkPayoutPaid(
        finance_pb2.MarkPayoutPaidRequest(
            idempotency_key=idempotency_key(),
            payout_id=payout.payout_id,
            reference=f"wx-{payout.payout_id}",
        )
    )
    books.saw(reply.receipt)
    return reply.payout


def on(clock: Clock, month: int, day: int) -> None:
    """Noon in Shanghai on that day of 2026."""
    clock.now = datetime(2026, month, day, 4, tzinfo=UTC)


def test_danas_four_payouts_withhold_domain_md_figures_to_the_fen(
    running: Running,
    shop: LedgerClient,
    admin: LedgerClient,
    finance: LedgerClient,
    clock: Clock,
    tmp_path: Path,
) -> None:
    books = Books(shop)
    dana_earns(shop, admin, clock, books)
    record(finance, DANA)
    figures = []
    for (month, day), gross in (((1, 15), 800_000), ((1, 28), 200_000)):
        on(clock, month, day)
        requested = request(finance, gross, books)
        figures.append((requested.amount, requested.tax, requested.net))
        assert paid(finance, requested, books).tax == requested.tax

    # 02-10: 20,000.00 requested (it would withhold 330.00), then failed: nothing withheld,
    # its income and its month gone from the year.
    on(clock, 2, 10)
    failing = request(finance, 2_000_000, books)
    assert (failing.tax, failing.net) == (33_000, 1_967_000)
    approve(finance, failing.payout_id)
    books.saw(
        finance.finance.MarkPayoutFailed(
            finance_pb2.MarkPayoutFailedRequest(
                idempotency_key=idempotency_key(),
                payout_id=failing.payout_id,
                reason="account frozen",
            )
        ).receipt
    )

    on(clock, 3, 10)
    third = request(finance, 300_000, books)
    figures.append((third.amount, third.tax, third.net))
    paid(finance, third, books)
    on(clock, 4, 2)
    fourth = request(finance, 6_000_000, books)
    figures.append((fourth.amount, fourth.tax, fourth.net))
    assert figures == [
        (800_000, 4_200, 795_800),
        (200_000, 4_800, 195_200),
        (300_000, 0, 300_000),
        (6_000_000, 173_000, 5_827_000),
    ]

    # Before it is paid: gross out of available, in flight; the payable list and its CSV say
    # gross, tax and net.
    assert books.of(DANA) == {"available": 300_000, "in_flight": 6_000_000, "paid_out": 1_291_000}
    [listed] = finance.finance.ListPayable(
        finance_pb2.ListPayableRequest(min_log_position=books.position)
    ).payouts
    assert (listed.payout_id, listed.amount, listed.tax, listed.net) == (
        fourth.payout_id,
        6_000_000,
        173_000,
        5_827_000,
    )
    got = finance.finance.GetPayout(finance_pb2.GetPayoutRequest(payout_id=fourth.payout_id))
    assert (got.payout.amount, got.payout.tax, got.payout.net) == (6_000_000, 173_000, 5_827_000)
    payable = tmp_path / "payable.csv"
    base = [LEDGER, "finance", "--address", running.target, "--key", running.keys.finance]
    done = subprocess.run(
        [*base, "payable", "--csv", str(payable)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    with payable.open(encoding="utf-8-sig") as f:
        [row] = list(csv.DictReader(f))
    assert (row["gross"], row["tax"], row["net"]) == ("60000.00", "1730.00", "58270.00")

    # Paid: the net to the rail, the tax to the tax-payable account; every sum zero.
    paid(finance, fourth, books)
    assert books.of(DANA) == {"available": 300_000, "paid_out": 7_118_000}
    assert books.of("tax:payable") == {"available": 182_000}
    everyone = shop.report.ListBalances(
        report_pb2.ListBalancesRequest(min_log_position=books.position, page_size=1000)
    ).balances
    assert (
        sum(
            b.frozen + b.available - b.debt + b.in_flight + b.paid_out + b.clearing
            for b in everyone
        )
        == 0
    )

    # The monthly filing and the quarterly report, as finance exports them.
    january = cli_rows(base, tmp_path, "tax", "month", "--month", "2026-01")
    assert [
        (
            r["account"],
            r["kind"],
            r["name"],
            r["id_number"],
            r["payouts"],
            r["gross"],
            r["tax"],
            r["net"],
        )
        for r in january
    ] == [(DANA, "individual", "Dana Li", DANA_ID.id_number, "2", "10000.00", "90.00", "9910.00")]
    assert cli_rows(base, tmp_path, "tax", "month", "--month", "2026-02") == []
    quarter = cli_rows(base, tmp_path, "tax", "quarter", "--quarter", "2026Q1")
    assert [
        (
            r["account"],
            r["name"],
            r["id_type"],
            r["earned"],
            r["clawed_back"],
            r["net"],
            r["paid_gross"],
            r["tax_withheld"],
            r["closed"],
        )
        for r in quarter
    ] == [
        (DANA, "Dana Li", "resident_id", "76000.00", "0.00", "76000.00", "13000.00", "90.00", "no"),
        # The supplier earned the supply price: a payee too, a business nobody recorded.
        ("supplier:S1", "", "", "10000.00", "0.00", "10000.00", "0.00", "0.00", "no"),
    ]
    assert quarter[1]["kind"] == "not recorded"
    april = cli_rows(base, tmp_path, "tax", "quarter", "--quarter", "2026Q2")
    assert [(r["account"], r["paid_gross"], r["tax_withheld"]) for r in april] == [
        (DANA, "60000.00", "1730.00")
    ]


def cli_rows(base: list[str], tmp_path: Path, *args: str) -> list[dict[str, str]]:
    """``ledger finance …`` writing a CSV file, read back as a spreadsheet would."""
    out = tmp_path / "out.csv"
    done = subprocess.run(
        [*base, *args, "--csv", str(out)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    with out.open(encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def test_a_closed_quarters_report_shows_finance_each_payee_and_reads_back_as_closed(
    shop: LedgerClient,
    admin: LedgerClient,
    finance: LedgerClient,
    clock: Clock,
) -> None:
    """CloseQuarter's answer (each payee with the identity finance may see), its replay,
    GetQuarterReport of the closed quarter, and a quarter not written YYYYQn refused; the
    quarter's rules are tests/integration/test_tax_rules.py's."""
    books = Books(shop)
    dana_earns(shop, admin, clock, books)
    record(finance, DANA)
    on(clock, 4, 2)
    closed = finance.finance.CloseQuarter(
        finance_pb2.CloseQuarterRequest(idempotency_key="close-2026Q1", quarter="2026Q1")
    )
    assert closed.report.closed and closed.report.quarter == "2026Q1"
    assert [
        (x.payee.account, x.payee.identity.name, x.earned, x.paid_gross, x.tax_withheld)
        for x in closed.report.lines
    ] == [(DANA, "Dana Li", 7_600_000, 0, 0), ("supplier:S1", "", 1_000_000, 0, 0)]
    again = finance.finance.CloseQuarter(
        finance_pb2.CloseQuarterRequest(idempotency_key="close-2026Q1", quarter="2026Q1")
    )
    assert again.receipt.replayed and again.report == closed.report
    q1 = finance.tax.GetQuarterReport(tax_pb2.GetQuarterReportRequest(quarter="2026Q1")).report
    assert q1 == closed.report
    bad = refused(
        lambda: finance.finance.CloseQuarter(
            finance_pb2.CloseQuarterRequest(idempotency_key=idempotency_key(), quarter="2026-Q2")
        )
    )
    assert bad.code == StatusCode.INVALID_ARGUMENT and "quarter" in bad.fields


def test_only_finance_keys_see_an_identity(
    running: Running,
    shop: LedgerClient,
    admin: LedgerClient,
    finance: LedgerClient,
) -> None:
    enroll(shop, "dana")
    recorded = record(finance, DANA).payee
    assert recorded.identity == DANA_ID and recorded.has_identity
    assert finance.tax.GetPayee(tax_pb2.GetPayeeRequest(account=DANA)).payee.identity == DANA_ID
    with running.client(running.keys.auditor) as auditor:
        seen = auditor.tax.GetPayee(tax_pb2.GetPayeeRequest(account=DANA)).payee
    assert seen.has_identity and not seen.HasField("identity")
    seen = admin.tax.GetPayee(tax_pb2.GetPayeeRequest(account=DANA)).payee
    assert seen.has_identity and not seen.HasField("identity")
    denied = refused(lambda: shop.tax.GetPayee(tax_pb2.GetPayeeRequest(account=DANA)))
    assert denied.code == StatusCode.PERMISSION_DENIED
    for key in (running.keys.auditor, running.keys.admin, running.keys.shop_a):
        with running.client(key) as other:
            writing = refused(lambda o=other: record(o, DANA))
        assert writing.code == StatusCode.PERMISSION_DENIED


def test_the_tax_table_is_published_by_admin_or_finance_and_used_from_its_moment(
    running: Running,
    shop: LedgerClient,
    admin: LedgerClient,
    finance: LedgerClient,
    clock: Clock,
) -> None:
    books = Books(shop)
    dana_earns(shop, admin, clock, books)
    record(finance, DANA)
    assert finance.tax.GetTaxTable(tax_pb2.GetTaxTableRequest()).table.version == 1
    flat = tax_pb2.TaxTable(
        brackets=[tax_pb2.TaxBracket(up_to=0, rate_bps=2000)],
        income_ratio_bps=10_000,
        monthly_deduction=0,
        currency="CNY",
    )
    later = Timestamp()
    later.FromDatetime(datetime(2026, 2, 1, tzinfo=UTC))
    flat.effective_from.CopyFrom(later)
    published = admin.tax.PublishTaxTable(
        tax_pb2.PublishTaxTableRequest(idempotency_key=idempotency_key(), table=flat)
    ).table
    assert published.version == 2
    before = request(finance, 100_000, books)  # January: the default table
    assert before.tax == 0
    on(clock, 2, 3)
    after = request(finance, 100_000, books)  # 20% of everything this year, less 0.00
    assert (after.tax, after.net) == (40_000, 60_000)
    by_finance = finance.tax.PublishTaxTable(
        tax_pb2.PublishTaxTableRequest(
            idempotency_key=idempotency_key(),
            table=tax_pb2.TaxTable(
                brackets=[tax_pb2.TaxBracket(rate_bps=300)],
                income_ratio_bps=8000,
                monthly_deduction=500_000,
            ),
        )
    ).table
    assert by_finance.version == 3
    with running.client(running.keys.auditor) as auditor:
        assert auditor.tax.GetTaxTable(tax_pb2.GetTaxTableRequest(version=2)).table.version == 2
        denied = refused(
            lambda: auditor.tax.PublishTaxTable(
                tax_pb2.PublishTaxTableRequest(idempotency_key=idempotency_key(), table=flat)
            )
        )
    assert denied.code == StatusCode.PERMISSION_DENIED
    unbounded = refused(
        lambda: admin.tax.PublishTaxTable(
            tax_pb2.PublishTaxTableRequest(
                idempotency_key=idempotency_key(),
                table=tax_pb2.TaxTable(
                    brackets=[tax_pb2.TaxBracket(up_to=100, rate_bps=300)], income_ratio_bps=8000
                ),
            )
        )
    )
    assert unbounded.code == StatusCode.INVALID_ARGUMENT
    assert "table.brackets[0].up_to" in unbounded.fields


def test_identities_are_sealed_at_rest_and_keys_rotate_without_rewriting_history(
    running: Running,
    shop: LedgerClient,
    finance: LedgerClient,
    tmp_path: Path,
) -> None:
    enroll(shop, "dana")
    enroll(shop, "erin")
    first = record(finance, DANA).payee
    assert first.identity_key_id == "k1"
    log = running.server.app.recorder.select_notifications(start=1, limit=10_000)
    [recorded] = [n for n in log if n.topic.endswith("Payee.Recorded")]
    assert b"k1" in recorded.state  # the key's id, beside the ciphertext
    stored = b"".join(n.state for n in log)
    assert b"Dana Li" not in stored and DANA_ID.id_number.encode() not in stored

    # Rotation: a new key made current (as `ledger identity-keys add` does), read again by
    # the server: new records are sealed with it, the old still open with theirs.
    add_key(tmp_path / "identity-keys.json", "k2")
    running.server.vault.reload()
    erin = tax_pb2.PayeeIdentity(name="Erin Wu", id_type="passport", id_number="E12345678")
    second = record(finance, "reseller:erin", identity=erin).payee
    assert (second.identity_key_id, second.identity) == ("k2", erin)
    assert finance.tax.GetPayee(tax_pb2.GetPayeeRequest(account=DANA)).payee.identity == DANA_ID


def test_a_sealed_identity_opens_only_for_its_payee_and_with_the_key_it_names(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys.json"
    done = subprocess.run(
        [LEDGER, "identity-keys", "add", "--id", "k1", "--file", str(keys)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    vault = VaultFile(str(keys)).get()
    dana = Identity("Dana Li", "resident_id", "11010519900307002X")
    sealed = vault.seal(dana, platform_id="acme", account=DANA)
    assert sealed == vault.seal(dana, platform_id="acme", account=DANA)  # retries match
    assert vault.open(sealed, platform_id="acme", account=DANA) == dana
    with pytest.raises(VaultError, match="does not open"):
        vault.open(sealed, platform_id="acme", account="reseller:erin")
    with pytest.raises(VaultError, match="no longer hold"):
        vault.open(SealedIdentity("k9", sealed.sealed), platform_id="acme", account=DANA)
    again = subprocess.run(
        [LEDGER, "identity-keys", "add", "--id", "k1", "--file", str(keys)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 2 and "already holds a key 'k1'" in again.stderr
