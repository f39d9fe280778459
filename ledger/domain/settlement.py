"""The record of one settlement run: when it ran and which orders it released."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.copying import CheapCopy
from ledger.domain.decisions import Decided
from ledger.domain.ids import stable_id
from ledger.domain.order import OrderKey


class SettlementRun(Decided, CheapCopy, Aggregate):
    """Recorded once, never changed: shared by the commands that read it (Decided)."""

    @staticmethod
    def create_id(platform_id: str, run_key: str) -> UUID:
        return stable_id("settlement-run", platform_id, run_key)

    @event("Ran")
    def __init__(self, platform_id: str, run_key: str, ran_at: datetime,
                 settled: Sequence[OrderKey]) -> None:
        self.platform_id = platform_id
        self.run_key = run_key
        self.ran_at = ran_at
        self.settled = tuple(settled)

    @property
    def orders(self) -> tuple[OrderKey, ...]:
        """The orders released. Runs recorded before order ids were scoped to storefronts
        named them by id alone: their storefront is unknown here (empty)."""
        return tuple(k if isinstance(k, OrderKey) else OrderKey("", k) for k in self.settled)
