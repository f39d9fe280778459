"""A withdrawal (提现): requested → approved → paid, or rejected, or failed.

Its id is derived from the request's idempotency key, so it is stable across retries and
short and printable enough (32 characters, letters and digits) to be the payment rail's own
idempotency key, such as WeChat Pay's out_order_no. Each step is idempotent at the API and
refused in the wrong state.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.copying import CheapCopy
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


class Payout(CheapCopy, Aggregate):
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

    # Each step repeated on a payout already in its result is a no-op (returns False), so a
    # finance clerk's double click is harmless; any other state is refused.

    def approve(self, *, by: str, at: datetime) -> bool:
        if self.status == APPROVED:
            return False
        self._check(REQUESTED, "approve")
        self._approved(by=by, at=at)
        return True

    def reject(self, *, reason: str, at: datetime) -> bool:
        if self.status == REJECTED:
            return False
        self._check(REQUESTED, "reject")
        self._rejected(reason=reason, at=at, postings=self._return_postings())
        return True

    def mark_paid(self, *, reference: str, at: datetime) -> bool:
        if self.status == PAID and self.reference == reference:
            return False
        self._check(APPROVED, "mark paid")
        # The gross leaves in flight: the net to the rail, the tax to the tax authority.
        postings = (Posting(self.account, IN_FLIGHT, self.currency, -self.amount),
                    Posting(self.account, PAID_OUT, self.currency, self.net),
                    *((Posting(TAX_PAYABLE, AVAILABLE, self.currency, self.tax),)
                      if self.tax else ()))
        assert_balanced(postings)
        self._paid(reference=reference, at=at, postings=postings)
        return True

    def mark_failed(self, *, reason: str, at: datetime) -> bool:
        if self.status == FAILED:
            return False
        self._check(APPROVED, "mark failed")
        self._failed(reason=reason, at=at, postings=self._return_postings())
        return True

    def _return_postings(self) -> tuple[Posting, ...]:
        return (Posting(self.account, IN_FLIGHT, self.currency, -self.amount),
                Posting(self.account, AVAILABLE, self.currency, self.amount))

    def _check(self, required: str, action: str) -> None:
        if self.status != required:
            raise RuleViolation(
                f"cannot {action} payout {self.payout_id}: it is {self.status}, not {required}",
                reason=f"PAYOUT_{self.status.upper()}")

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
