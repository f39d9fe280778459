"""The commands that shape a platform's team tree and the customers bound to it: enrolling
(or importing) resellers, moving them, their ranks, bindings and monthly team targets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from ledger.application.commands.base import Command
from ledger.application.commands.checks import (
    IN_CALENDAR,
    Violations,
    check_amount,
    check_id,
    check_month,
    check_text,
)
from ledger.domain.money import is_currency
from ledger.domain.periods import FIRST_YEAR, LAST_YEAR


@dataclass(frozen=True)
class EnrollReseller(Command):
    reseller_id: str
    sponsor_id: str
    customer_id: str
    without_sponsor: bool
    # For a platform bringing its tree: when the reseller joined. None: now. Checked against
    # the clock (not in the future) and the sponsor's enrolment by the domain.
    enrolled_at: datetime | None = None
    added_later: ClassVar[tuple[str, ...]] = ("enrolled_at",)

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "reseller_id", self.reseller_id)
        check_id(v, "sponsor_id", self.sponsor_id, required=False)
        check_id(v, "customer_id", self.customer_id, required=False)
        if self.sponsor_id and self.without_sponsor:
            v.append(("without_sponsor", "cannot be set together with sponsor_id"))
        if self.sponsor_id and self.sponsor_id == self.reseller_id:
            v.append(("sponsor_id", "a reseller cannot sponsor itself"))
        if self.enrolled_at is not None and not FIRST_YEAR <= self.enrolled_at.year <= LAST_YEAR:
            v.append(("enrolled_at", IN_CALENDAR))
        return v


@dataclass(frozen=True)
class ImportReseller(EnrollReseller):
    """A member of a tree a platform brings with it (bulk import): enrolled under the sponsor
    named (none when empty: the tree is given whole, no binding is looked up), at the date
    given, holding ``rank`` from then on."""

    rank: str = ""

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "rank", self.rank, required=False)
        return v


@dataclass(frozen=True)
class BindCustomer(Command):
    customer_id: str
    reseller_id: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "customer_id", self.customer_id)
        check_id(v, "reseller_id", self.reseller_id)
        return v


@dataclass(frozen=True)
class MoveReseller(Command):
    reseller_id: str
    new_sponsor_id: str
    reason: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "reseller_id", self.reseller_id)
        check_id(v, "new_sponsor_id", self.new_sponsor_id, required=False)
        if not self.reason.strip():
            v.append(("reason", "moving a reseller needs a reason"))
        check_text(v, "reason", self.reason)
        return v


@dataclass(frozen=True)
class SetRank(Command):
    reseller_id: str
    rank: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "reseller_id", self.reseller_id)
        check_id(v, "rank", self.rank, required=False)
        return v


@dataclass(frozen=True)
class RebindCustomer(Command):
    customer_id: str
    reseller_id: str
    reason: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "customer_id", self.customer_id)
        check_id(v, "reseller_id", self.reseller_id)
        if not self.reason.strip():
            v.append(("reason", "rebinding a customer needs a reason"))
        check_text(v, "reason", self.reason)
        return v


@dataclass(frozen=True)
class SetTeamTarget(Command):
    reseller_id: str
    month: str
    currency: str
    amount: int

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "reseller_id", self.reseller_id)
        check_month(v, "month", self.month)
        if not is_currency(self.currency):
            v.append(("currency", "must be an ISO 4217 code such as CNY"))
        check_amount(v, "amount", self.amount)
        return v
