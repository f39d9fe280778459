"""Settling the orders that are due: on request (AdminService.RunSettlement) and on the
server's schedule (every LEDGER_SETTLEMENT_INTERVAL seconds, platform by platform).

The read models find the candidates (an order completed, past its freeze window, with no
after-sales case open); the RunSettlement command checks each again on its own events before
anything moves (application/finance_handlers.py), so a read model behind the log can only
leave an order for the next run, never settle one that is not due. Harmless on several
servers at once: an order is settled once, whoever gets there.
"""

from __future__ import annotations

import uuid
from typing import Protocol

import structlog

from ledger.application import commands as c
from ledger.application.finance_handlers import MAX_SETTLEMENT_BATCH
from ledger.application.ledger_app import LedgerApplication, Outcome
from ledger.application.steps import Steps
from ledger.domain.order import OrderKey
from ledger.domain.settlement import SettlementRun
from ledger.projections.clock import micros

log = structlog.get_logger(__name__)

SCHEDULER = "settlement-scheduler"  # the principal scheduled runs are recorded under


class DueOrders(Protocol):
    """What settlement reads of the read models (projections/reader.py ``ReadModels``);
    times in microseconds since the epoch."""

    def due_orders(self, platform: str, now: int, limit: int) -> list[OrderKey]: ...

    def platforms_with_due_orders(self, now: int) -> list[str]: ...


class Settlement:
    def __init__(self, app: LedgerApplication, models: DueOrders) -> None:
        self.app = app
        self.models = models

    async def run(self, steps: Steps, caller: c.Caller, key: str
                  ) -> tuple[Outcome, SettlementRun]:
        """Settles what is due now, as the read models (caught up with the log first) list
        it: a request answers for everything recorded before it."""
        await steps.caught_up(await steps.read(self.app.log_position))
        due = await steps.read(self.models.due_orders, caller.platform_id,
                               micros(self.app.clock()), MAX_SETTLEMENT_BATCH)
        return await steps.write(caller, c.RunSettlement(key, tuple(due)))

    async def settle_due(self, steps: Steps) -> int:
        """One scheduled run: each platform with orders due gets a run of its own, under a
        key of its own (a scheduled run is never a repeat). Answers how many orders settled.
        It does not wait for the read models: what they do not list yet is settled by the
        next run."""
        now = micros(self.app.clock())
        settled = 0
        for platform in await steps.read(self.models.platforms_with_due_orders, now):
            due = await steps.read(self.models.due_orders, platform, now, MAX_SETTLEMENT_BATCH)
            caller = c.Caller(platform, SCHEDULER, "system")
            command = c.RunSettlement(f"scheduled-{uuid.uuid4().hex}", tuple(due))
            outcome, _ = await steps.write(caller, command)
            settled += outcome.ref.settled_count
        if settled:
            log.info("settled due orders", orders=settled)
        return settled
