"""The quarter's tax report: drawn from the read models at a log position, and closed.

A closed quarter's report is final (DOMAIN.md, Tax): it is recorded whole in the QuarterBook
with the position it was drawn at, and whatever is recorded after that position lands in
the next quarter, so closing needs one write (compare closing.py's two). An open quarter's
report is drawn anew at each request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from ledger.application import commands as c
from ledger.application.ledger_app import LedgerApplication, Outcome
from ledger.application.steps import Steps
from ledger.domain.errors import check
from ledger.domain.quarters import QuarterBook, QuarterLine, QuarterReport, quarter_bounds
from ledger.projections.clock import micros


class QuarterReads(Protocol):
    """What a report reads of the read models (projections/reader.py ``ReadModels``)."""

    def quarter_lines(self, platform: str, start: int, end: int, *, carried_after: int,
                      up_to: int) -> Sequence[QuarterLine]: ...


def drawn_report(models: QuarterReads, book: QuarterBook | None, platform: str, quarter: str,
                 timezone: str, position: int) -> QuarterReport:
    """The quarter's report from the read models as they stand at ``position``: its own
    entries, and, for the first quarter after the last closed, the entries recorded too
    late for the closed ones."""
    start, end = quarter_bounds(quarter, timezone)
    carried = -1
    if book is not None and book.last_closed and quarter == book.next_to_close():
        carried = book.closed[book.last_closed].last_position
    lines = models.quarter_lines(
        platform, micros(start), micros(end), carried_after=carried, up_to=position
    )
    return QuarterReport(quarter, timezone, tuple(lines), position)


class TaxReports:
    def __init__(self, app: LedgerApplication, models: QuarterReads) -> None:
        self.app = app
        self.models = models

    async def close_quarter(self, steps: Steps, caller: c.Caller, close: c.CloseQuarter
                            ) -> tuple[Outcome, QuarterReport]:
        """Draws the report once the read models hold the whole log, and records it for
        good; answers with the report recorded (the first, for a quarter closed before)."""
        check(close.violations())
        position = await steps.caught_up(await steps.read(self.app.log_position))
        book = await steps.read(self.app.find, QuarterBook.create_id(caller.platform_id))
        report = await steps.read(drawn_report, self.models, book, caller.platform_id,
                                  close.quarter, self.app.timezone, position)
        outcome, book = await steps.write(caller, dataclasses.replace(close, report=report))
        return outcome, book.closed[close.quarter]

    async def quarter_report(self, steps: Steps, caller: c.Caller, quarter: str,
                             min_log_position: int = 0) -> QuarterReport:
        """A closed quarter's report as recorded; an open one's as the read models stand
        once they hold ``min_log_position`` (a receipt the caller wants to see)."""
        violations: c.Violations = []
        c.check_quarter(violations, "quarter", quarter)
        check(violations)
        book = await steps.read(self.app.find, QuarterBook.create_id(caller.platform_id))
        if book is not None and quarter in book.closed:
            return book.closed[quarter]
        position = await steps.caught_up(min_log_position)
        return await steps.read(drawn_report, self.models, book, caller.platform_id, quarter,
                                self.app.timezone, position)
