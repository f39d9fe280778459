"""Every rule of the team tree and of customers' bindings, decided apart from the Reseller
and CustomerBinding aggregates (team.py) that record them.

Each ``decide_…(state, command)`` reads what stands and returns the events to record, or
raises the domain's error; it changes nothing (see decisions.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from ledger.domain.attribution import first_binding_stands
from ledger.domain.decisions import Event
from ledger.domain.errors import AlreadyExists, InvalidInput, NotFound, RuleViolation

if TYPE_CHECKING:
    from ledger.domain.team import CustomerBinding, Reseller

# A bound on every walk up the tree: deeper than any real team, and a guard against a loop
# should the recorded tree ever be corrupt.
MAX_TREE_DEPTH = 100_000

# --- commands -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enrol:
    """A new reseller under ``sponsor_id`` ("": at the top of a tree), at the date ``asked``
    (None: now), at ``rank`` from then on (a member brought in with their tree)."""

    platform_id: str
    reseller_id: str
    sponsor_id: str
    customer_id: str
    asked: datetime | None
    now: datetime
    rank: str = ""


@dataclass(frozen=True, slots=True)
class Move:
    new_sponsor_id: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class SetRank:
    rank: str
    at: datetime


@dataclass(frozen=True, slots=True)
class SetTeamTarget:
    """The team's sales goal for a month (team GMV, in the currency's minor units)."""

    month: str
    currency: str
    amount: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Bind:
    platform_id: str
    customer_id: str
    reseller_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Rebind:
    customer_id: str
    reseller_id: str
    reason: str
    at: datetime


# --- events, field for field as stored ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enrolled(Event):
    platform_id: str
    reseller_id: str
    sponsor_id: str
    customer_id: str
    enrolled_at: datetime


@dataclass(frozen=True, slots=True)
class Moved(Event):
    method: ClassVar[str] = "_moved"
    from_sponsor_id: str
    to_sponsor_id: str
    reason: str
    moved_at: datetime


@dataclass(frozen=True, slots=True)
class RankSet(Event):
    method: ClassVar[str] = "_rank_set"
    rank: str
    set_at: datetime


@dataclass(frozen=True, slots=True)
class TeamTargetSet(Event):
    method: ClassVar[str] = "_team_target_set"
    month: str
    currency: str
    amount: int
    set_at: datetime


@dataclass(frozen=True, slots=True)
class Bound(Event):
    platform_id: str
    customer_id: str
    reseller_id: str
    bound_at: datetime


@dataclass(frozen=True, slots=True)
class Rebound(Event):
    method: ClassVar[str] = "_rebound"
    reseller_id: str
    reason: str
    bound_at: datetime


# --- decisions ------------------------------------------------------------------------------


def decide_enrol(existing: Reseller | None, sponsor: Reseller | None, cmd: Enrol
                 ) -> list[Event]:
    """``existing``: the reseller already under that id, if any; ``sponsor``: the sponsor
    named, as found (None: not found, or none named)."""
    if existing is not None:
        raise AlreadyExists(f"reseller {cmd.reseller_id} already exists")
    if cmd.sponsor_id and sponsor is None:
        raise NotFound(f"sponsor {cmd.sponsor_id} does not exist", reason="SPONSOR_NOT_FOUND")
    at = enrolment_date(cmd.reseller_id, cmd.asked, now=cmd.now, sponsor=sponsor)
    events: list[Event] = [Enrolled(cmd.platform_id, cmd.reseller_id, cmd.sponsor_id,
                                    cmd.customer_id, at)]
    if cmd.rank:
        events.append(RankSet(cmd.rank, at))
    return events


def enrolment_date(reseller_id: str, asked: datetime | None, *, now: datetime,
                   sponsor: Reseller | None) -> datetime:
    """When a new reseller joins the tree: the date asked for (a platform bringing its tree
    with the dates its people joined), or now.

    A date is never in the future and never before the sponsor's own enrolment. Undated,
    the reseller joins now, or at the sponsor's enrolment if that is later: an undated
    sponsor enrolled by a server whose clock is ahead of this one's, a moment ago."""
    if asked is None:
        return max(now, sponsor.enrolled_at) if sponsor is not None else now
    if asked > now:
        raise InvalidInput([("enrolled_at", f"must not be in the future (it is "
                                            f"{asked.isoformat()}, now is {now.isoformat()})")])
    if sponsor is not None and asked < sponsor.enrolled_at:
        raise RuleViolation(
            f"{reseller_id} cannot enrol at {asked.isoformat()}, before its sponsor "
            f"{sponsor.reseller_id} enrolled at {sponsor.enrolled_at.isoformat()}",
            reason="ENROLLED_BEFORE_SPONSOR",
        )
    return asked


def check_paid_after_enrolment(seller_id: str, enrolled_at: datetime, paid_at: datetime
                               ) -> None:
    """An order cannot be paid before its seller enrolled: the seller was in no team then,
    and the chain of that time would be made up."""
    if paid_at < enrolled_at:
        raise RuleViolation(
            f"the order is paid at {paid_at.isoformat()}, before its seller {seller_id} "
            f"enrolled at {enrolled_at.isoformat()}",
            reason="PAID_BEFORE_SELLER_ENROLLED",
        )


def decide_move(moving: Reseller, cmd: Move, sponsor_of: Callable[[str], str]
                ) -> list[Event]:
    """Only orders paid after the move see the new chain; history is never rewritten.
    ``sponsor_of``: each reseller's sponsor as it stands, to refuse a loop."""
    check_no_cycle(moving.reseller_id, cmd.new_sponsor_id, sponsor_of)
    if not cmd.reason.strip():
        raise InvalidInput([("reason", "moving a reseller needs a reason")])
    if cmd.new_sponsor_id == moving.sponsor_id:
        raise RuleViolation(
            f"reseller {moving.reseller_id} is already under "
            f"{cmd.new_sponsor_id or 'no sponsor'}",
            reason="ALREADY_UNDER_SPONSOR",
        )
    return [Moved(moving.sponsor_id, cmd.new_sponsor_id, cmd.reason, cmd.at)]


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


def decide_set_rank(ranked: Reseller, cmd: SetRank) -> list[Event]:
    return [RankSet(cmd.rank, cmd.at)]


def decide_set_team_target(leader: Reseller, cmd: SetTeamTarget) -> list[Event]:
    return [TeamTargetSet(cmd.month, cmd.currency, cmd.amount, cmd.at)]


def decide_bind(bound: CustomerBinding | None, cmd: Bind) -> list[Event]:
    """The first binding stands: binding again to the same reseller records nothing, to
    another is refused (only an admin rebinds)."""
    if first_binding_stands(cmd.customer_id, bound.reseller_id if bound else "",
                            cmd.reseller_id):
        return []
    return [Bound(cmd.platform_id, cmd.customer_id, cmd.reseller_id, cmd.at)]


def decide_rebind(bound: CustomerBinding | None, cmd: Rebind) -> list[Event]:
    if bound is None:
        raise NotFound(f"customer {cmd.customer_id} is not bound to any reseller")
    if not cmd.reason.strip():
        raise InvalidInput([("reason", "rebinding a customer needs a reason")])
    if cmd.reseller_id == bound.reseller_id:
        raise RuleViolation(
            f"customer {bound.customer_id} is already bound to {cmd.reseller_id}",
            reason="ALREADY_BOUND",
        )
    return [Rebound(cmd.reseller_id, cmd.reason, cmd.at)]
