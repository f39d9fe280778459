"""A withdrawal (提现): requested → approved → paid, or rejected, or failed.

Its id is derived from the request's idempotency key, so it is stable across retries and
short and printable enough (32 characters, letters and digits) to be the payment rail's own
idempotency key, such as WeChat Pay's out_order_no. Each step is idempotent at the API and
refused in the wrong state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.copying import CheapCopy
from ledger.domain.decisions import Decided, Event
from ledger.domain.errors import AccessDenied, RuleViolation
from ledger.domain.ids import stable_id
from ledger.domain.money import (
    AVAILABLE,
    IN_FLIGHT,
    PAID_OUT,
    TAX_PAYABLE,
    Posting,
    assert_balanced,
)

# The role whose payout requests are limited (see check_payout_permission): the API
# authenticates callers with the same names (ledger/api/auth.py).
STOREFRONT_ROLE = "storefront"

REQUESTED = "requested"
APPROVED = "approved"
REJECTED = "rejected"
PAID = "paid"
FAILED = "failed"


def payout_number(platform_id: str, principal: str, key: str) -> str:
    """A stable, printable payout id: PO + 30 upper-case hex digits."""
    return "PO" + stable_id("payout-number", platform_id, principal, key).hex[:30].upper()


def check_payout_permission(requester_role: str, account: str) -> None:
    """A storefront may request payouts for its platform's resellers only (a withdrawal the
    reseller asks for in the shop); finance pays resellers and suppliers alike."""
    if requester_role == STOREFRONT_ROLE and not account.startswith("reseller:"):
        raise AccessDenied("a storefront may request payouts for resellers only")


class Payout(Decided, CheapCopy, Aggregate):
    @staticmethod
    def create_id(platform_id: str, payout_id: str) -> UUID:
        return stable_id("payout", platform_id, payout_id)

    @event("Requested")
    def __init__(
        self,
        platform_id: str,
        payout_id: str,
        account: str,
        currency: str,
        amount: int,
        requested_by: str,
        requested_at: datetime,
        postings: Sequence[Posting],
        tax: int = 0,
        tax_year: int = 0,
    ) -> None:
        """``amount`` is the gross; ``tax`` the income tax withheld on it (0 for a business,
        and for payouts requested before withholding), counted in the payee's ``tax_year``
        (0: none)."""
        self.platform_id = platform_id
        self.payout_id = payout_id
        self.account = account
        self.currency = currency
        self.amount = amount
        self.tax = tax
        self.tax_year = tax_year
        self.requested_by = requested_by
        self.requested_at = requested_at
        self.status = REQUESTED
        self.reference = ""
        self.reason = ""
        self.updated_at = requested_at

    @property
    def net(self) -> int:
        """What reaches the payee: the gross less the tax withheld."""
        return self.amount - self.tax

    @staticmethod
    def request_postings(account: str, currency: str, amount: int) -> tuple[Posting, ...]:
        postings = (Posting(account, AVAILABLE, currency, -amount),
                    Posting(account, IN_FLIGHT, currency, amount))
        assert_balanced(postings)
        return postings

    def return_postings(self) -> tuple[Posting, ...]:
        """A payout that ends unpaid (rejected, failed) returns its amount to available."""
        return (Posting(self.account, IN_FLIGHT, self.currency, -self.amount),
                Posting(self.account, AVAILABLE, self.currency, self.amount))

    @event("Approved")
    def _approved(self, by: str, at: datetime) -> None:
        self.status = APPROVED
        self.updated_at = at

    @event("Rejected")
    def _rejected(self, reason: str, at: datetime, postings: Sequence[Posting]) -> None:
        self.status = REJECTED
        self.reason = reason
        self.updated_at = at

    @event("Paid")
    def _paid(self, reference: str, at: datetime, postings: Sequence[Posting]) -> None:
        self.status = PAID
        self.reference = reference
        self.updated_at = at

    @event("Failed")
    def _failed(self, reason: str, at: datetime, postings: Sequence[Posting]) -> None:
        self.status = FAILED
        self.reason = reason
        self.updated_at = at


# --- decisions (see decisions.py) -------------------------------------------------------------
# Each step asked of a payout already in its result records nothing (an empty decision), so a
# finance clerk's double click is harmless; any other state is refused.


@dataclass(frozen=True, slots=True)
class Approve:
    by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class MarkPaid:
    reference: str
    at: datetime


@dataclass(frozen=True, slots=True)
class MarkFailed:
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Approved(Event):
    method: ClassVar[str] = "_approved"
    by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Rejected(Event):
    method: ClassVar[str] = "_rejected"
    reason: str
    at: datetime
    postings: tuple[Posting, ...]


@dataclass(frozen=True, slots=True)
class Paid(Event):
    method: ClassVar[str] = "_paid"
    reference: str
    at: datetime
    postings: tuple[Posting, ...]


@dataclass(frozen=True, slots=True)
class Failed(Event):
    method: ClassVar[str] = "_failed"
    reason: str
    at: datetime
    postings: tuple[Posting, ...]


def decide_approve(payout: Payout, cmd: Approve) -> list[Event]:
    if payout.status == APPROVED:
        return []
    check_status(payout, REQUESTED, "approve")
    return [Approved(cmd.by, cmd.at)]


def decide_reject(payout: Payout, cmd: Reject) -> list[Event]:
    return decide_unpaid_end(payout, REJECTED, REQUESTED, "reject",
                             Rejected(cmd.reason, cmd.at, payout.return_postings()))


def decide_mark_paid(payout: Payout, cmd: MarkPaid) -> list[Event]:
    if payout.status == PAID and payout.reference == cmd.reference:
        return []
    check_status(payout, APPROVED, "mark paid")
    # The gross leaves in flight: the net to the rail, the tax to the tax authority.
    postings = (Posting(payout.account, IN_FLIGHT, payout.currency, -payout.amount),
                Posting(payout.account, PAID_OUT, payout.currency, payout.net),
                *((Posting(TAX_PAYABLE, AVAILABLE, payout.currency, payout.tax),)
                  if payout.tax else ()))
    assert_balanced(postings)
    return [Paid(cmd.reference, cmd.at, postings)]


def decide_mark_failed(payout: Payout, cmd: MarkFailed) -> list[Event]:
    return decide_unpaid_end(payout, FAILED, APPROVED, "mark failed",
                             Failed(cmd.reason, cmd.at, payout.return_postings()))


def decide_unpaid_end(payout: Payout, ended: str, required: str, action: str,
                      event: Event) -> list[Event]:
    """A payout ending unpaid (rejected, failed): nothing again if it already ended so."""
    if payout.status == ended:
        return []
    check_status(payout, required, action)
    return [event]


def check_status(payout: Payout, required: str, action: str) -> None:
    if payout.status != required:
        raise RuleViolation(
            f"cannot {action} payout {payout.payout_id}: it is {payout.status}, not {required}",
            reason=f"PAYOUT_{payout.status.upper()}")
