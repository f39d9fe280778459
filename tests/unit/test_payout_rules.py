"""Who may ask for a payout, and whose payouts have income tax withheld."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ledger.domain.errors import AccessDenied, RuleViolation
from ledger.domain.payee import (
    BUSINESS,
    IDENTITY_MISSING,
    INDIVIDUAL,
    Payee,
    SealedIdentity,
    withholds_tax,
)
from ledger.domain.payout import STOREFRONT_ROLE, check_payout_permission
from ledger.domain.tax_table import DEFAULT_TAX_TABLE

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_a_storefront_may_request_a_payout_for_a_reseller() -> None:
    check_payout_permission(STOREFRONT_ROLE, "reseller:carol")


def test_a_storefront_may_not_request_a_payout_for_a_supplier() -> None:
    with pytest.raises(AccessDenied, match="resellers only"):
        check_payout_permission(STOREFRONT_ROLE, "supplier:S1")


@pytest.mark.parametrize("account", ["reseller:carol", "supplier:S1"])
def test_finance_may_request_payouts_for_resellers_and_suppliers(account: str) -> None:
    check_payout_permission("finance", account)


def payee(kind: str, identity: SealedIdentity | None) -> Payee:
    return Payee("p", "reseller:dana", kind, "", identity, "finance", T0)


def test_an_identified_individual_has_tax_withheld() -> None:
    assert withholds_tax("reseller:dana", payee(INDIVIDUAL, SealedIdentity("k1", "x")))


def test_a_business_is_paid_gross() -> None:
    assert not withholds_tax("reseller:dana", payee(BUSINESS, None))


def test_a_supplier_nobody_recorded_is_a_business_paid_gross() -> None:
    assert not withholds_tax("supplier:S1", None)


@pytest.mark.parametrize("recorded", [None, payee(INDIVIDUAL, None)])
def test_an_individual_without_identity_is_refused(recorded: Payee | None) -> None:
    with pytest.raises(RuleViolation) as refused:
        withholds_tax("reseller:dana", recorded)
    assert refused.value.reason == IDENTITY_MISSING


def test_tax_is_withheld_only_in_the_tables_currency() -> None:
    DEFAULT_TAX_TABLE.check_withholds_in("CNY")
    with pytest.raises(RuleViolation) as refused:
        DEFAULT_TAX_TABLE.check_withholds_in("USD")
    assert refused.value.reason == "WITHHOLDING_CURRENCY"
