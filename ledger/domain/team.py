"""Resellers and the team tree, and the binding of customers to resellers (锁粉).

A reseller has at most one sponsor (上级). Moving a reseller is an admin action with a
reason, and it only changes who earns on orders paid afterwards: each paid order carries the
chain as it stood then. There is no sign-up bonus: commission is earned on sales only.

A reseller remembers when each sponsor and rank began, so an order backfilled with the time
it was paid is split along the chain, and at the ranks, of that time, not of its import.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.copying import CheapCopy
from ledger.domain.errors import InvalidInput, RuleViolation
from ledger.domain.ids import stable_id

# A bound on every walk up the tree: deeper than any real team, and a guard against a loop
# should the recorded tree ever be corrupt.
MAX_TREE_DEPTH = 100_000


class Reseller(CheapCopy, Aggregate):
    @staticmethod
    def create_id(platform_id: str, reseller_id: str) -> UUID:
        return stable_id("reseller", platform_id, reseller_id)

    @event("Enrolled")
    def __init__(
        self,
        platform_id: str,
        reseller_id: str,
        sponsor_id: str,
        customer_id: str,
        enrolled_at: datetime,
    ) -> None:
        self.platform_id = platform_id
        self.reseller_id = reseller_id
        self.sponsor_id = sponsor_id
        self.customer_id = customer_id
        self.enrolled_at = enrolled_at
        self.rank = ""
        self.team_targets: dict[str, int] = {}
        # (since, sponsor) and (since, rank), in the order they were recorded.
        self.sponsors: list[tuple[datetime, str]] = [(enrolled_at, sponsor_id)]
        self.ranks: list[tuple[datetime, str]] = [(enrolled_at, "")]

    def sponsor_at(self, at: datetime) -> str:
        """The sponsor as it stood at ``at``; before enrolment, the first one known (a
        storefront enrolling its existing teams and then backfilling their orders knows no
        earlier tree)."""
        return as_of(self.sponsors, at)

    def rank_at(self, at: datetime) -> str:
        return as_of(self.ranks, at)

    def move(self, *, new_sponsor_id: str, reason: str, at: datetime) -> None:
        if not reason.strip():
            raise InvalidInput([("reason", "moving a reseller needs a reason")])
        if new_sponsor_id == self.sponsor_id:
            raise RuleViolation(
                f"reseller {self.reseller_id} is already under {new_sponsor_id or 'no sponsor'}",
                reason="ALREADY_UNDER_SPONSOR",
            )
        self._moved(from_sponsor_id=self.sponsor_id, to_sponsor_id=new_sponsor_id,
                    reason=reason, moved_at=at)

    def set_rank(self, *, rank: str, at: datetime) -> None:
        self._rank_set(rank=rank, set_at=at)

    def set_team_target(self, *, month: str, currency: str, amount: int, at: datetime) -> None:
        """The team's sales goal for a month (team GMV, in the currency's minor units)."""
        self._team_target_set(month=month, currency=currency, amount=amount, set_at=at)

    @event("Moved")
    def _moved(self, from_sponsor_id: str, to_sponsor_id: str, reason: str,
               moved_at: datetime) -> None:
        self.sponsor_id = to_sponsor_id
        self.sponsors.append((moved_at, to_sponsor_id))

    @event("RankSet")
    def _rank_set(self, rank: str, set_at: datetime) -> None:
        self.rank = rank
        self.ranks.append((set_at, rank))

    @event("TeamTargetSet")
    def _team_target_set(self, month: str, currency: str, amount: int, set_at: datetime) -> None:
        self.team_targets[f"{month}/{currency}"] = amount


def as_of(history: list[tuple[datetime, str]], at: datetime) -> str:
    """The value that began last at or before ``at`` (the first, if none had begun). Times
    are the writing servers' clocks, so a later entry may carry an earlier time: entries are
    kept in the order recorded and the latest recorded among those begun wins."""
    if history[-1][0] <= at:
        return history[-1][1]  # the common case: nothing has changed since
    begun = [value for since, value in history if since <= at]
    return begun[-1] if begun else history[0][1]


def check_no_cycle(
    reseller_id: str, new_sponsor_id: str, sponsor_of: Callable[[str], str]
) -> None:
    """Refuses a sponsor that is the reseller itself or anywhere in its downline."""
    current = new_sponsor_id
    for _ in range(MAX_TREE_DEPTH):
        if not current:
            return
        if current == reseller_id:
            raise RuleViolation(
                f"{new_sponsor_id} is in the downline of {reseller_id}: the tree would loop",
                reason="SPONSOR_CYCLE",
            )
        current = sponsor_of(current)
    raise AssertionError(f"upline of {new_sponsor_id} is deeper than {MAX_TREE_DEPTH}")


class CustomerBinding(CheapCopy, Aggregate):
    """A customer's reseller: the first binding stands; only an admin rebinds."""

    @staticmethod
    def create_id(platform_id: str, customer_id: str) -> UUID:
        return stable_id("customer", platform_id, customer_id)

    @event("Bound")
    def __init__(
        self, platform_id: str, customer_id: str, reseller_id: str, bound_at: datetime
    ) -> None:
        self.platform_id = platform_id
        self.customer_id = customer_id
        self.reseller_id = reseller_id
        self.bound_at = bound_at

    def rebind(self, *, reseller_id: str, reason: str, at: datetime) -> None:
        if not reason.strip():
            raise InvalidInput([("reason", "rebinding a customer needs a reason")])
        if reseller_id == self.reseller_id:
            raise RuleViolation(
                f"customer {self.customer_id} is already bound to {reseller_id}",
                reason="ALREADY_BOUND",
            )
        self._rebound(reseller_id=reseller_id, reason=reason, bound_at=at)

    @event("Rebound")
    def _rebound(self, reseller_id: str, reason: str, bound_at: datetime) -> None:
        self.reseller_id = reseller_id
        self.bound_at = bound_at
