"""Resellers and the team tree, and the binding of customers to resellers (锁粉).

A reseller has at most one sponsor (上级). Moving a reseller is an admin action with a
reason, and it only changes who earns on orders paid afterwards: each paid order carries the
chain as it stood then. There is no sign-up bonus: commission is earned on sales only.

A reseller remembers when each sponsor and rank began, so an order backfilled with the time
it was paid is split along the chain, and at the ranks, of that time, not of its import.

A platform moving onto the ledger brings its tree with the dates its people joined: an
enrolment may carry a past date (a business date, like a backfilled payment's), never in
the future and never before the sponsor's own, and an order cannot be paid before its
seller enrolled. So a member of the tree at a time was enrolled by then, and so was
everyone above them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.copying import CheapCopy
from ledger.domain.decisions import Decided, create
from ledger.domain.errors import RuleViolation
from ledger.domain.ids import stable_id
from ledger.domain.team_decisions import (
    MAX_TREE_DEPTH,
    Enrol,
    check_no_cycle,
    check_paid_after_enrolment,
    decide_enrol,
    enrolment_date,
)

__all__ = ["MAX_TREE_DEPTH", "CustomerBinding", "Listed", "Reseller", "as_of",
           "check_no_cycle", "enroll", "enrolment_date", "sponsor_loop", "sponsors_first"]
END_OF_TIME = datetime.max.replace(tzinfo=UTC)  # an undated enrolment's place: after all


class Reseller(Decided, CheapCopy, Aggregate):
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
        """The sponsor as it stood at ``at``.

        The chain of a payment is never asked for before its seller enrolled (refused:
        ``check_enrolled_by``), nor above a member before their sponsor did (refused:
        ``enrolment_date``). A time before enrolment is still possible where the servers'
        clocks disagree (a sponsor enrolled, undated, on a server whose clock is ahead) and
        in trees recorded before these rules: the reseller was then in the tree by log
        order, so the first sponsor known is the answer."""
        return as_of(self.sponsors, at)

    def check_enrolled_by(self, at: datetime) -> None:
        """An order cannot be paid before its seller enrolled (``check_paid_after_enrolment``)."""
        check_paid_after_enrolment(self.reseller_id, self.enrolled_at, at)

    def rank_at(self, at: datetime) -> str:
        return as_of(self.ranks, at)

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


def enroll(platform_id: str, reseller_id: str, *, sponsor: Reseller | None, customer_id: str,
           asked: datetime | None, now: datetime, rank: str = "") -> Reseller:
    """A new reseller under ``sponsor`` (None: at the top of a tree), enrolled at the date
    asked for or now (``enrolment_date``), at ``rank`` from that moment: a member brought in
    with their tree holds their rank since they joined, for the orders backfilled after."""
    enrol = Enrol(platform_id, reseller_id, sponsor.reseller_id if sponsor else "",
                  customer_id, asked, now, rank)
    return create(Reseller, *decide_enrol(None, sponsor, enrol))


class Listed(NamedTuple):
    """A member of a tree being brought in, as listed: who, under whom, since when (None:
    now)."""

    reseller_id: str
    sponsor_id: str
    enrolled_at: datetime | None = None


def sponsors_first(members: Sequence[Listed]) -> tuple[list[int], list[int]]:
    """The order to enrol ``members`` in: each after its sponsor where the sponsor is among
    them, and otherwise earliest joined first, so the log records the tree in the order it
    grew (a member dated before its sponsor comes right after the sponsor, to be refused for
    that). Returns the positions in that order, and apart, as listed, those that cannot be
    ordered: sponsors of each other in a loop, and everyone below them. A reseller listed
    twice is placed at its first listing; the later ones follow it."""
    first: dict[str, int] = {}
    for i, listed in enumerate(members):
        first.setdefault(listed.reseller_id, i)
    # Each position's parent: its first listing for a later one, else its sponsor's listing.
    parent: dict[int, int] = {}
    below: dict[int, list[int]] = {}
    for i, (reseller_id, sponsor_id, _) in enumerate(members):
        if first[reseller_id] != i:
            parent[i] = first[reseller_id]
        elif sponsor_id and sponsor_id != reseller_id and sponsor_id in first:
            parent[i] = first[sponsor_id]
        if i in parent:
            below.setdefault(parent[i], []).append(i)
    # Down the tree from those without a parent, each position once (it has one parent),
    # carrying the latest date on the way down: no member is placed before its parent.
    key: dict[int, tuple[datetime, int, int]] = {}
    level = [i for i in range(len(members)) if i not in parent]
    depth = 0
    while level:
        for i in level:
            since = members[i].enrolled_at or END_OF_TIME
            key[i] = (max(since, key[parent[i]][0]) if i in parent else since, depth, i)
        level = [j for i in level for j in below.get(i, ())]
        depth += 1
    return sorted(key, key=key.__getitem__), [i for i in range(len(members)) if i not in key]


def sponsor_loop(members: Sequence[Listed], position: int) -> RuleViolation:
    """Why the member at ``position``, one ``sponsors_first`` could not order, is refused:
    the loop its sponsors make among ``members`` (each reseller at its first listing)."""
    sponsor_of: dict[str, str] = {}
    for reseller_id, sponsor_id, _ in members:
        sponsor_of.setdefault(reseller_id, sponsor_id)
    reseller_id = members[position][0]
    path = [reseller_id]
    while len(path) <= len(sponsor_of):  # bounded: a walk longer than the list repeats
        path.append(sponsor_of.get(path[-1], ""))
        if path[-1] in path[:-1]:
            break
    assert path[-1] in path[:-1], f"{reseller_id} is below no loop of sponsors: {path}"
    loop = path[path.index(path[-1]):]
    return RuleViolation(f"the sponsors above {reseller_id} in this import loop: "
                         f"{' → '.join(loop)}", reason="SPONSOR_CYCLE")


def as_of(history: list[tuple[datetime, str]], at: datetime) -> str:
    """The value that began last at or before ``at`` (the first, if none had begun). Times
    are the writing servers' clocks, so a later entry may carry an earlier time: entries are
    kept in the order recorded and the latest recorded among those begun wins."""
    if history[-1][0] <= at:
        return history[-1][1]  # the common case: nothing has changed since
    begun = [value for since, value in history if since <= at]
    return begun[-1] if begun else history[0][1]


class CustomerBinding(Decided, CheapCopy, Aggregate):
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

    @event("Rebound")
    def _rebound(self, reseller_id: str, reason: str, bound_at: datetime) -> None:
        self.reseller_id = reseller_id
        self.bound_at = bound_at
