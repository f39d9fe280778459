"""Tax on payouts to individuals on the application (DOMAIN.md "Tax on commission paid to
individuals"): who may be paid, the quarter's report closed for good, and recording a payee
(only an individual has an identity, stored sealed). Dana's sale on
2026-01-01 earns her 76,000.00. The same over gRPC, with identities opened for finance keys
only, is in tests/e2e/test_tax.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.adapters.identity_vault import Identity, VaultFile
from ledger.application import commands as c
from ledger.application.payees import record_payee
from ledger.application.tax_reports import TaxReports
from ledger.domain.errors import InvalidInput, RuleViolation
from ledger.domain.payee import BUSINESS, INDIVIDUAL, Payee, SealedIdentity
from ledger.domain.payout import Payout
from ledger.domain.quarters import QuarterReport
from tests.conftest import Clock
from tests.helpers import identified
from tests.integration.stack import FINANCE, SHOP, Stack, run

DANA = "reseller:dana"


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 1, 1, 2, tzinfo=UTC))


def key() -> str:
    return uuid.uuid4().hex


def on(clock: Clock, month: int, day: int) -> None:
    """Noon in Shanghai on that day of 2026."""
    clock.now = datetime(2026, month, day, 4, tzinfo=UTC)


def dana_earns(stack: Stack, clock: Clock) -> None:
    """A sale on 2026-01-01 whose 40% earns Dana 76,000.00, settled on 01-09."""
    stack.do(SHOP, c.EnrollReseller(key(), "dana", "", "", False),
             c.PlaceOrder(key(), "D1", "c1", "dana", "CNY",
                          (c.NewLine("sofa", "general", 1, 20_000_000, 1_000_000, "S1"),)),
             c.PayOrder(key(), "D1", "w-D1", 20_000_000),
             c.CompleteOrder(key(), "D1"))
    clock.advance(days=8)
    assert stack.settle(key()) == ["D1"]
    assert stack.of(DANA) == {"available": 7_600_000}


def request(stack: Stack, amount: int) -> Payout:
    return stack.answer(FINANCE, c.RequestPayout(key(), DANA, "CNY", amount))


def paid(stack: Stack, payout: Payout) -> Payout:
    stack.do(FINANCE, c.ApprovePayout(key(), payout.payout_id))
    return stack.answer(FINANCE, c.MarkPayoutPaid(key(), payout.payout_id,
                                                  f"wx-{payout.payout_id}"))


def test_a_payout_to_an_individual_without_identity_is_refused(
        stack: Stack, clock: Clock) -> None:
    dana_earns(stack, clock)
    with pytest.raises(RuleViolation) as missing:
        request(stack, 100_000)
    assert missing.value.reason == "PAYEE_IDENTITY_MISSING"
    assert DANA in missing.value.message
    stack.do(FINANCE, c.RecordPayee(key(), DANA, INDIVIDUAL, "", None))  # identity to come
    with pytest.raises(RuleViolation) as again:
        request(stack, 100_000)
    assert again.value.reason == "PAYEE_IDENTITY_MISSING"
    assert stack.of(DANA) == {"available": 7_600_000}  # nothing half-written
    # Recorded as a business, Dana is paid gross.
    stack.do(FINANCE, c.RecordPayee(key(), DANA, BUSINESS, "91310000MA1FL0000X", None))
    gross = request(stack, 100_000)
    assert (gross.amount, gross.tax, gross.net) == (100_000, 0, 100_000)


def close(stack: Stack, quarter: str, idempotency_key: str = "") -> QuarterReport:
    return run(TaxReports(stack.app, stack.models).close_quarter(
        stack.steps, FINANCE, c.CloseQuarter(idempotency_key or key(), quarter)))[1]


def report(stack: Stack, quarter: str) -> QuarterReport:
    return run(TaxReports(stack.app, stack.models).quarter_report(
        stack.steps, FINANCE, quarter, stack.app.log_position()))


def test_a_closed_quarters_report_is_final_and_later_corrections_land_in_the_next(
        stack: Stack, clock: Clock) -> None:
    dana_earns(stack, clock)
    stack.do(FINANCE, identified(key(), "dana"))
    on(clock, 3, 20)
    paid(stack, request(stack, 800_000))
    with pytest.raises(RuleViolation) as early:
        close(stack, "2026Q1")
    assert early.value.reason == "QUARTER_NOT_OVER"
    on(clock, 4, 2)
    closed = close(stack, "2026Q1", "close-2026Q1")
    assert closed.closed_at is not None and closed.quarter == "2026Q1"
    assert [(x.account, x.earned, x.paid_gross, x.tax_withheld) for x in closed.lines] == [
        (DANA, 7_600_000, 800_000, 4_200), ("supplier:S1", 1_000_000, 0, 0)]
    outcome, again = run(TaxReports(stack.app, stack.models).close_quarter(
        stack.steps, FINANCE, c.CloseQuarter("close-2026Q1", "2026Q1")))
    assert outcome.replayed and again == closed

    # A sale backfilled into March, recorded after the close: Q1's report stays as it was
    # closed; the correction lands in 2026Q2.
    stack.do(SHOP, c.ImportOrder("import:late", "late", "c-late", "dana", "CNY",
                                 (c.NewLine("lamp", "general", 1, 100_000, 50_000, "S1"),),
                                 "w-late", paid_at=datetime(2026, 3, 25, 4, tzinfo=UTC)))
    assert report(stack, "2026Q1") == closed
    q2 = report(stack, "2026Q2")
    assert q2.closed_at is None
    assert [(x.account, x.earned) for x in q2.lines] == [(DANA, 20_000), ("supplier:S1", 50_000)]

    with pytest.raises(RuleViolation) as not_over:
        close(stack, "2026Q3")
    assert not_over.value.reason == "QUARTER_NOT_OVER"
    clock.now = datetime(2026, 10, 2, tzinfo=UTC)
    with pytest.raises(RuleViolation) as skipped:
        close(stack, "2026Q3")
    assert skipped.value.reason == "QUARTER_OUT_OF_ORDER"
    with pytest.raises(InvalidInput) as bad:
        close(stack, "2026-Q2")
    assert "quarter" in dict(bad.value.violations)


# --- recording a payee ------------------------------------------------------------------------


def test_only_an_individual_has_an_identity_and_it_is_stored_sealed(
        stack: Stack, tmp_path: Path) -> None:
    stack.do(SHOP, c.EnrollReseller(key(), "dana", "", "", False))
    vault = VaultFile(str(tmp_path / "identity-keys.json")).get()
    dana = Identity("Dana Li", "resident_id", "11010519900307002X")

    def seal(identity: Identity) -> SealedIdentity:
        return vault.seal(identity, platform_id="acme", account=DANA)

    def record(kind: str, identity: Identity | None, tax_id: str = "") -> Payee:
        return run(record_payee(stack.steps, FINANCE, key(), DANA, kind, tax_id, identity,
                                seal))[1]

    with pytest.raises(InvalidInput) as business:
        record(BUSINESS, dana, "91310000MA1FL0000X")
    assert business.value.violations == [("identity", "only an individual has an identity")]
    with pytest.raises(InvalidInput) as odd:
        record(INDIVIDUAL, Identity("Dana Li", "resident_id", "1101-0519"))
    assert "identity.id_number" in dict(odd.value.violations)
    assert stack.app.find(Payee.create_id("acme", DANA)) is None  # nothing was written

    to_come = record(INDIVIDUAL, None)  # an individual, identity still to come
    assert (to_come.kind, to_come.identity) == (INDIVIDUAL, None)
    recorded = record(INDIVIDUAL, dana)
    assert recorded.identity is not None and "Dana" not in recorded.identity.sealed
    assert vault.open(recorded.identity, platform_id="acme", account=DANA) == dana
