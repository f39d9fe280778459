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
from typing import ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.copying import CheapCopy
from ledger.domain.decisions import Decided, Event
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


class Wallet(Decided, CheapCopy, Aggregate):
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


# --- decisions (see decisions.py): what a wallet records, decided before anything is ------


@dataclass(frozen=True, slots=True)
class Reserve:
    """A payout takes its amount out of available at once (in flight)."""

    payout_id: str
    amount: int
    minimum: int


@dataclass(frozen=True, slots=True)
class Release:
    """A payout ends: paid (gone for good) or returned to available."""

    payout_id: str
    amount: int
    paid: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class Credited(Event):
    method: ClassVar[str] = "_credited"
    amount: int
    source: str


@dataclass(frozen=True, slots=True)
class Debited(Event):
    method: ClassVar[str] = "_debited"
    amount: int
    source: str


@dataclass(frozen=True, slots=True)
class Reserved(Event):
    method: ClassVar[str] = "_reserved"
    payout_id: str
    amount: int


@dataclass(frozen=True, slots=True)
class Released(Event):
    method: ClassVar[str] = "_released"
    payout_id: str
    amount: int
    paid: bool
    at: datetime


def decide_move(wallet: Wallet, move: WalletMove, source: str) -> list[Event]:
    """Follows one of ``wallet_moves``: a credit or a debit by its sign (a debit may leave a
    debt: a clawback is never refused)."""
    assert (move.account, move.currency) == (wallet.account, wallet.currency), move
    if move.amount > 0:
        return [Credited(move.amount, source)]
    if move.amount < 0:
        return [Debited(-move.amount, source)]
    return []


def decide_reserve(wallet: Wallet, cmd: Reserve) -> list[Event]:
    check_no_debt(wallet, "any withdrawal")
    if cmd.amount < cmd.minimum:
        raise RuleViolation(f"the minimum payout is {cmd.minimum} {wallet.currency}",
                            reason="BELOW_MINIMUM_PAYOUT")
    if cmd.amount > wallet.available:
        raise RuleViolation(
            f"{cmd.amount} exceeds the {wallet.available} {wallet.currency} available",
            reason="INSUFFICIENT_AVAILABLE")
    return [Reserved(cmd.payout_id, cmd.amount)]


def decide_release(wallet: Wallet, cmd: Release) -> list[Event]:
    return [Released(cmd.payout_id, cmd.amount, cmd.paid, cmd.at)]


def check_payable(wallet: Wallet) -> None:
    """A payout requested before a clawback left the account in debt is not approved:
    paying it would hand out money the account owes back. Rejected, its amount returns
    to available and repays the debt first."""
    check_no_debt(wallet, "a payout is approved; reject it to repay the debt with it")


def check_no_debt(wallet: Wallet, what: str) -> None:
    if wallet.available < 0:
        raise RuleViolation(
            f"{wallet.account} owes {wallet.debt} {wallet.currency}; a debt must be repaid "
            f"before {what}", reason="ACCOUNT_IN_DEBT")
