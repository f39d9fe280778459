"""Closing a day, whichever server runs it, and finishing a close whose server died.

A close is two writes with a read between: BeginClosingDay shuts the day to writes, the read
models catch up with the whole log and the day's statement is drawn from them, and CloseDay
records it. It cannot be one transaction: the statement comes from read models that must
first apply the log up to the write that shut the day. So the middle is made safe instead
(the rules are PeriodBook's, ledger/domain/periods.py):

- once the day is shut its movements cannot change, so its statement is fixed by the log:
  any server may draw it, at any later time, and all draw the same;
- a close whose server died between the steps leaves the day shut without its statement.
  It is finished by a repeat of the request with its key, by a CloseDay of that day with any
  key, or by ``ClosingFinisher``, which every server runs at start and with each scheduled
  settlement run; until then that day is the next to close, so no later close skips it;
- two servers closing one day at once: each step is written only if the PeriodBook has not
  moved since it was read, so one server writes it and the other, run again, finds the day
  shut (and joins that close) or closed (and answers with the statement recorded);
- the request's key is checked before the first write (BeginClosingDay), so a key taken by
  another request is refused with nothing shut.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog

from ledger.application import commands as c
from ledger.application.audit_trail import AuditTrail
from ledger.application.group_commit import GroupCommitter
from ledger.application.ledger_app import LedgerApplication
from ledger.domain.periods import DayStatement, PeriodBook
from ledger.projections.reader import ReadModels

log = structlog.get_logger(__name__)

FINISHER = "day-closer"  # the principal a finisher's closes are recorded under
CATCH_UP_TIMEOUT = 60.0


async def drawn_statement(app: LedgerApplication, models: ReadModels, platform: str,
                          day: str, caught_up: Callable[[int], Awaitable[Any]],
                          audit: AuditTrail | None = None) -> DayStatement:
    """The day's statement from the read models, once they hold the log as it stands now.
    Drawn after the day was shut, so it is the day's last word whoever draws it.

    With ``audit``, the statement names the platform's tree head signed over the log up to
    that same position: every entry the statement can depend on (the day is shut, the days
    before it closed), so the statement is bound to the exact history it was drawn from."""
    position = await asyncio.to_thread(app.log_position)
    await caught_up(position)
    statement = await asyncio.to_thread(models.day_statement, platform, day, app.timezone)
    if audit is None:
        return statement
    head = await asyncio.to_thread(audit.sign_at_position, platform, position, f"close {day}")
    return dataclasses.replace(
        statement, tree_size=head.tree_size, tree_root=head.root.hex(),
        head_signed_at_us=head.timestamp_us, head_key_id=head.key_id,
        head_signature=head.signature.hex())


class ClosingFinisher:
    """Finishes the closes that were begun and never recorded: a server died between the
    two steps. Runs in every server; two finishing one day record it once (their key is the
    day's, so the second replays the first)."""

    def __init__(self, app: LedgerApplication, writer: GroupCommitter, models: ReadModels,
                 processed: Callable[[], int], audit: AuditTrail | None = None) -> None:
        self.audit = audit
        self.app = app
        self.writer = writer
        self.models = models
        self.processed = processed

    async def finish(self, platforms: Iterable[str]) -> list[tuple[str, str]]:
        """(platform, day) of each close it finished. One aggregate read per platform: a
        platform no key can call has no close to finish."""
        finished = []
        for platform in platforms:
            book = await asyncio.to_thread(self.app.find, PeriodBook.create_id(platform))
            day = book.unfinished if book is not None else ""
            if not day:
                continue
            statement = await drawn_statement(self.app, self.models, platform, day,
                                              self._caught_up, self.audit)
            caller = c.Caller(platform, FINISHER, "system")
            await self.writer.submit_async(caller, c.CloseDay(f"finish:{day}", day, statement))
            log.warning("finished a close whose server stopped before recording it",
                        platform=platform, day=day)
            finished.append((platform, day))
        return finished

    async def _caught_up(self, position: int) -> None:
        deadline = time.monotonic() + CATCH_UP_TIMEOUT
        while self.processed() < position:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"read models did not reach log position {position}")
            await asyncio.sleep(0.01)
