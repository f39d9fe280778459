"""Reconciliation with the payment rail: importing a rail's bill, and acknowledging a break.

Both answer with what the read models make of the write (the day's state, the break as it
now stands), so each waits for them to hold it. Matching is the domain's
(ledger/domain/reconciliation.py); the breaks are the read models' (projections/
reconciliation.py), which is why acknowledging one first asks them whether it is open.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from ledger.application import commands as c
from ledger.application.ledger_app import LedgerApplication, Outcome
from ledger.application.steps import Steps
from ledger.domain.bills import bill_digest, parse_bill
from ledger.domain.errors import NotFound, RuleViolation, check
from ledger.domain.rail_bills import BreakBook, RailBill
from ledger.domain.reconciliation import OPEN


class BreakFound(Protocol):
    @property
    def status(self) -> str: ...

    @property
    def resolved_by(self) -> str: ...


class ReconciliationReads(Protocol):
    """What reconciliation reads of the read models (projections/reader.py ``ReadModels``):
    a day's state and one of its breaks."""

    def day_reconciliation(self, platform: str, day: str) -> Any: ...

    def find_break(self, platform: str, day: str, break_id: str) -> BreakFound | None: ...


class Reconciliation:
    def __init__(self, app: LedgerApplication, models: ReconciliationReads) -> None:
        self.app = app
        self.models = models

    async def import_bill(self, steps: Steps, caller: c.Caller, key: str, day: str,
                          kind: str, fmt: str, data: bytes) -> tuple[Outcome, RailBill, Any]:
        """The bill (a file's bytes) is parsed whole, then recorded in one write with its
        lines, named by its digest; answers with the bill recorded (the first, for a file
        imported before) and the day's state once the read models have matched it."""
        lines = await asyncio.to_thread(parse_bill, data, fmt=fmt, kind=kind, day=day)
        command = c.ImportBill(key, day, kind, fmt, bill_digest(data), tuple(lines))
        outcome, bill = await steps.write(caller, command)
        await steps.caught_up(outcome.log_position)
        state = await steps.read(self.models.day_reconciliation, caller.platform_id, bill.day)
        return outcome, bill, state

    async def acknowledge_break(self, steps: Steps, caller: c.Caller,
                                command: c.AcknowledgeBreak) -> tuple[Outcome, Any]:
        """Only an open break is acknowledged (the read model, caught up with the log,
        says which are); repeating the request with its key answers as before, since the
        book remembers what it acknowledged. Answers with the break as it now stands."""
        check(command.violations())
        platform, day, break_id = caller.platform_id, command.day, command.break_id
        await steps.caught_up(await steps.read(self.app.log_position))
        found = await steps.read(self.models.find_break, platform, day, break_id)
        if found is None:
            raise NotFound(f"{day} has no break {break_id}")
        book = await steps.read(self.app.find, BreakBook.create_id(platform, day))
        if found.status != OPEN and (book is None or break_id not in book.acknowledged):
            raise RuleViolation(f"break {break_id} is {found.status} "
                                f"({found.resolved_by}), not open", reason="BREAK_RESOLVED")
        outcome, _ = await steps.write(caller, command)
        await steps.caught_up(outcome.log_position)
        found = await steps.read(self.models.find_break, platform, day, break_id)
        assert found is not None  # a break is never deleted, only its status changes
        return outcome, found
