"""Payees: who the platform pays, as tax law sees them.

An individual (a reseller, usually) has income tax withheld on every payout, and the
platform must know who they are (name, ID type and number) to file it; a registered business
(a supplier, usually) is paid gross and named by its tax id. Finance records which; a
reseller nobody recorded is an individual, a supplier nobody recorded a business (see
``Payee.is_individual_by_default``).

The identity is personal data: the events carry it sealed (ciphertext and the id of the key
that sealed it, see ledger/adapters/identity_vault.py), never in clear, so keys can be
rotated and the history read with the key each entry names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.copying import CheapCopy
from ledger.domain.decisions import Decided, Event
from ledger.domain.errors import RuleViolation
from ledger.domain.ids import stable_id

INDIVIDUAL = "individual"
BUSINESS = "business"
PAYEE_KINDS = (INDIVIDUAL, BUSINESS)


@dataclass(frozen=True)
class SealedIdentity:
    """An individual's identity as the log keeps it: opaque without the key ``key_id``."""

    key_id: str
    sealed: str


def is_individual_by_default(account: str) -> bool:
    """Resellers are people who sell by sharing; suppliers are companies."""
    return account.startswith("reseller:")


class Payee(Decided, CheapCopy, Aggregate):
    @staticmethod
    def create_id(platform_id: str, account: str) -> UUID:
        return stable_id("payee", platform_id, account)

    @event("Recorded")
    def __init__(
        self,
        platform_id: str,
        account: str,
        kind: str,
        tax_id: str,
        identity: SealedIdentity | None,
        by: str,
        at: datetime,
    ) -> None:
        self.platform_id = platform_id
        self.account = account
        self._set(kind, tax_id, identity, at)

    @property
    def is_individual(self) -> bool:
        return self.kind == INDIVIDUAL

    def check_identified(self) -> None:
        """An individual is paid only once finance knows who they are: the tax withheld is
        filed under their name and ID."""
        if self.is_individual and self.identity is None:
            raise RuleViolation(missing_identity(self.account), reason=IDENTITY_MISSING)

    def _set(self, kind: str, tax_id: str, identity: SealedIdentity | None, at: datetime) -> None:
        self.kind = kind
        self.tax_id = tax_id
        self.identity = identity
        self.updated_at = at

    @event("Changed")
    def _changed(
        self, kind: str, tax_id: str, identity: SealedIdentity | None, by: str, at: datetime
    ) -> None:
        self._set(kind, tax_id, identity, at)


IDENTITY_MISSING = "PAYEE_IDENTITY_MISSING"


def withholds_tax(account: str, payee: Payee | None) -> bool:
    """Whether a payout to ``account`` has income tax withheld: an individual's has, and is
    refused until finance has recorded who they are (the tax is filed under their name); a
    business is paid gross. A payee nobody recorded is what its account suggests
    (``is_individual_by_default``): a reseller, an individual with no identity, is refused."""
    if payee is None:
        if is_individual_by_default(account):
            raise RuleViolation(missing_identity(account), reason=IDENTITY_MISSING)
        return False
    if not payee.is_individual:
        return False
    payee.check_identified()
    return True


def missing_identity(account: str) -> str:
    return (
        f"{account} is an individual with no identity recorded: income tax is withheld "
        "on every payout to an individual and filed under their name and ID, so finance "
        "records them first (TaxService.RecordPayee)"
    )


@dataclass(frozen=True, slots=True)
class RecordPayee:
    platform_id: str
    account: str
    kind: str
    tax_id: str
    identity: SealedIdentity | None
    by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class PayeeRecorded(Event):
    platform_id: str
    account: str
    kind: str
    tax_id: str
    identity: SealedIdentity | None
    by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class PayeeChanged(Event):
    method: ClassVar[str] = "_changed"
    kind: str
    tax_id: str
    identity: SealedIdentity | None
    by: str
    at: datetime


def decide_record_payee(payee: Payee | None, cmd: RecordPayee) -> list[Event]:
    """Records the payee (``payee``: as recorded before, if it was); the same record again
    changes nothing."""
    if payee is None:
        return [PayeeRecorded(cmd.platform_id, cmd.account, cmd.kind, cmd.tax_id, cmd.identity,
                              cmd.by, cmd.at)]
    if (cmd.kind, cmd.tax_id, cmd.identity) == (payee.kind, payee.tax_id, payee.identity):
        return []
    return [PayeeChanged(cmd.kind, cmd.tax_id, cmd.identity, cmd.by, cmd.at)]
