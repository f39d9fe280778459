"""The versioned history of a platform's commission plans.

The book opens with the default plan as version 1, in force from the beginning of time; each
publication adds the next version, effective from a moment not in the past and not before the
version it follows. An order is split with the plan in force when it was paid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.copying import CheapCopy
from ledger.domain.decisions import Decided, Event
from ledger.domain.errors import NotFound
from ledger.domain.ids import stable_id
from ledger.domain.plan import DEFAULT_PLAN, CommissionPlan, validate_plan
from ledger.domain.versions import in_force_at, next_version


class PlanBook(Decided, CheapCopy, Aggregate):
    @staticmethod
    def create_id(platform_id: str) -> UUID:
        return stable_id("plan-book", platform_id)

    @event("Opened")
    def __init__(self, platform_id: str, default_plan: CommissionPlan = DEFAULT_PLAN) -> None:
        self.platform_id = platform_id
        self.plans: list[CommissionPlan] = [default_plan]

    def in_force_at(self, at: datetime) -> CommissionPlan:
        return in_force_at(self.plans, at)

    def plan_version(self, version: int) -> CommissionPlan:
        if not 1 <= version <= len(self.plans):
            raise NotFound(f"plan version {version} does not exist")
        return self.plans[version - 1]

    @event("PlanPublished")
    def _published(self, plan: CommissionPlan) -> None:
        self.plans.append(plan)


@dataclass(frozen=True, slots=True)
class Publish:
    plan: CommissionPlan  # its version is the book's to give
    now: datetime


@dataclass(frozen=True, slots=True)
class PlanPublished(Event):
    method: ClassVar[str] = "_published"
    plan: CommissionPlan


def decide_publish(book: PlanBook, cmd: Publish) -> list[Event]:
    """Adds the next version; plans never change once published."""
    validate_plan(cmd.plan)
    return [PlanPublished(next_version(book.plans, cmd.plan, now=cmd.now,
                                       field="plan.effective_from", what="plan",
                                       reason="PLAN_EFFECTIVE_BEFORE_PREVIOUS"))]
