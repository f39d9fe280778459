"""Finance's commands on money going out: the settlement run that makes commission
available, payouts through their steps (requested, approved or rejected, paid or failed),
and the payees they are paid to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ledger.application.commands.base import Command
from ledger.application.commands.checks import (
    Violations,
    check_amount,
    check_id,
    check_payee_account,
    check_text,
)
from ledger.domain.money import is_currency
from ledger.domain.order import OrderKey
from ledger.domain.payee import BUSINESS, PAYEE_KINDS, SealedIdentity


@dataclass(frozen=True)
class RunSettlement(Command):
    """Settles the orders that are due. ``orders`` are the candidates the read models found
    (each named with its storefront: two storefronts may number orders alike); each is
    checked again on its own events before anything moves."""

    orders: tuple[OrderKey, ...] = ()
    derived: ClassVar[tuple[str, ...]] = ("orders",)


@dataclass(frozen=True)
class RequestPayout(Command):
    account: str
    currency: str
    amount: int

    def violations(self) -> Violations:
        v = super().violations()
        check_payee_account(v, "account", self.account)
        if not is_currency(self.currency):
            v.append(("currency", "must be an ISO 4217 code such as CNY"))
        check_amount(v, "amount", self.amount, positive=True)
        return v


@dataclass(frozen=True)
class PayoutStep(Command):
    payout_id: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "payout_id", self.payout_id)
        return v


@dataclass(frozen=True)
class ApprovePayout(PayoutStep):
    pass


@dataclass(frozen=True)
class RejectPayout(PayoutStep):
    reason: str = ""

    def violations(self) -> Violations:
        v = super().violations()
        if not self.reason.strip():
            v.append(("reason", "rejecting a payout needs a reason"))
        check_text(v, "reason", self.reason)
        return v


@dataclass(frozen=True)
class MarkPayoutPaid(PayoutStep):
    reference: str = ""

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "reference", self.reference)
        return v


@dataclass(frozen=True)
class MarkPayoutFailed(PayoutStep):
    reason: str = ""

    def violations(self) -> Violations:
        v = super().violations()
        if not self.reason.strip():
            v.append(("reason", "a failed payout needs the rail's reason"))
        check_text(v, "reason", self.reason)
        return v


@dataclass(frozen=True)
class RecordPayee(Command):
    """Finance records a payee. The identity arrives sealed (ledger/adapters/
    identity_vault.py): neither the log nor the idempotency records ever hold it in clear."""

    account: str
    kind: str
    tax_id: str
    identity: SealedIdentity | None

    def violations(self) -> Violations:
        v = super().violations()
        check_payee_account(v, "account", self.account)
        if self.kind not in PAYEE_KINDS:
            v.append(("kind", "must be individual or business"))
        check_id(v, "tax_id", self.tax_id, required=self.kind == BUSINESS)
        if self.kind == BUSINESS and self.identity is not None:
            v.append(("identity", "a business is named by its tax id, not a person's identity"))
        return v
