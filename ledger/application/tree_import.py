"""Bringing a team tree in: one ImportResellers message's members put in the order the
writer must enrol them, and those that no order can place refused before anything is sent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledger.application.commands import ImportReseller
from ledger.domain.errors import RuleViolation
from ledger.domain.team import Listed, sponsor_loop, sponsors_first


@dataclass(frozen=True)
class ImportPlan:
    """``queued``: the members to enrol, in that order (the writer runs commands in the
    order queued, so a sponsor is enrolled, in the same batch or an earlier one, before its
    members are); ``refused``: members whose sponsors loop among the message's members, each
    with why, never sent to the writer."""

    queued: list[ImportReseller]
    refused: list[tuple[str, RuleViolation]]


def plan_import(members: Sequence[ImportReseller]) -> ImportPlan:
    """Sponsors first, earliest joined first where that leaves a choice (``sponsors_first``):
    the log then records the tree in the order it grew."""
    tree = [Listed(m.reseller_id, m.sponsor_id, m.enrolled_at) for m in members]
    ordered, looped = sponsors_first(tree)
    return ImportPlan([members[i] for i in ordered],
                      [(tree[i].reseller_id, sponsor_loop(tree, i)) for i in looped])
