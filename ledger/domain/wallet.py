"""What a reseller or supplier can withdraw, kept on the write side so that payouts are
checked against it exactly.

A wallet is one account in one currency. Settlements credit it, refunds after settlement
debit it (which may leave it below zero: a debt, repaid first by later credits), payout
requests reserve from it, and a payout that fails or is rejected returns its amount. The
postings of these movements live on the order and payout events; the wallet keeps the
running figures that decide whether a payout may be requested.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.copying import CheapCopy
from ledger.domain.errors import RuleViolation
from ledger.domain.ids import stable_id
from ledger.domain.money import AVAILABLE, Posting

# The accounts that have a wallet: those paid out to. The platform keeps its share and the
# clearing and tax accounts are settled elsewhere; none of them withdraws.
WALLET_KINDS = ("reseller", "supplier")


@dataclass(frozen=True)
class WalletMove:
    """What one posting does to a wallet: ``amount`` into available (> 0, a settlement) or
    out of it (< 0, a clawback)."""

    account: str
    currency: str
    amount: int


def wallet_moves(postings: Iterable[Posting]) -> list[WalletMove]:
    """Which wallets the postings move: every posting into or out of the available bucket of
    a reseller or supplier, so withdrawable balances follow settlements and clawbacks. Frozen
    money is not withdrawable, so postings to frozen move no wallet."""
    return [WalletMove(p.account, p.currency, p.amount) for p in postings
            if p.bucket == AVAILABLE and p.account.split(":", 1)[0] in WALLET_KINDS]


class Wallet(CheapCopy, Aggregate):
    @staticmethod
    def create_id(platform_id: str, account: str, currency: str) -> UUID:
        return stable_id("wallet", platform_id, account, currency)

    @event("Opened")
    def __init__(self, platform_id: str, account: str, currency: str) -> None:
        self.platform_id = platform_id
        self.account = account
        self.currency = currency
        self.available = 0
        self.in_flight = 0
        self.paid_out = 0

    @property
    def debt(self) -> int:
        return max(0, -self.available)

    def credit(self, amount: int, source: str) -> None:
        if amount:
            self._credited(amount=amount, source=source)

    def debit(self, amount: int, source: str) -> None:
        if amount:
            self._debited(amount=amount, source=source)

    def move(self, move: WalletMove, source: str) -> None:
        """Follows one of ``wallet_moves``: a credit or a debit by its sign."""
        assert (move.account, move.currency) == (self.account, self.currency), move
        if move.amount > 0:
            self.credit(move.amount, source)
        else:
            self.debit(-move.amount, source)

    def _check_no_debt(self, what: str) -> None:
        if self.available < 0:
            raise RuleViolation(
                f"{self.account} owes {self.debt} {self.currency}; a debt must be repaid "
                f"before {what}", reason="ACCOUNT_IN_DEBT")

    def check_payable(self) -> None:
        """A payout requested before a clawback left the account in debt is not approved:
        paying it would hand out money the account owes back. Rejected, its amount returns
        to available and repays the debt first."""
        self._check_no_debt("a payout is approved; reject it to repay the debt with it")

    def reserve(self, *, payout_id: str, amount: int, minimum: int) -> None:
        """A payout takes its amount out of available at once (in flight)."""
        self._check_no_debt("any withdrawal")
        if amount < minimum:
            raise RuleViolation(f"the minimum payout is {minimum} {self.currency}",
                                reason="BELOW_MINIMUM_PAYOUT")
        if amount > self.available:
            raise RuleViolation(
                f"{amount} exceeds the {self.available} {self.currency} available",
                reason="INSUFFICIENT_AVAILABLE")
        self._reserved(payout_id=payout_id, amount=amount)

    def release(self, *, payout_id: str, amount: int, paid: bool, at: datetime) -> None:
        """A payout ends: paid (gone for good) or returned to available."""
        self._released(payout_id=payout_id, amount=amount, paid=paid, at=at)

    @event("Credited")
    def _credited(self, amount: int, source: str) -> None:
        self.available += amount

    @event("Debited")
    def _debited(self, amount: int, source: str) -> None:
        self.available -= amount

    @event("Reserved")
    def _reserved(self, payout_id: str, amount: int) -> None:
        self.available -= amount
        self.in_flight += amount

    @event("Released")
    def _released(self, payout_id: str, amount: int, paid: bool, at: datetime) -> None:
        self.in_flight -= amount
        if paid:
            self.paid_out += amount
        else:
            self.available += amount
