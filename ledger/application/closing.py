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
  key, or by ``Closing.finish``, which every server runs at start and with each scheduled
  settlement run; until then that day is the next to close, so no later close skips it;
- two servers closing one day at once: each step is written only if the PeriodBook has not
  moved since it was read, so one server writes it and the other, run again, finds the day
  shut (and joins that close) or closed (and answers with the statement recorded);
- the request's key is checked before the first write (BeginClosingDay), so a key taken by
  another request is refused with nothing shut.

A day's statement is read back the same way whoever asks (``Closing.day_statement``): a
closed day's summary is the one its close recorded, an open day's is drawn as the log
stands. The API (FinanceService.CloseDay, GetDayStatement) only translates: it validates the
request's fields, runs these and turns the lines' page into its token.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import structlog

from ledger import failpoints
from ledger.application import commands as c
from ledger.application.audit_trail import AuditTrail
from ledger.application.ledger_app import LedgerApplication, Outcome
from ledger.application.steps import Steps
from ledger.domain.errors import RuleViolation, check
from ledger.domain.periods import DayStatement, PeriodBook, StatementLine

log = structlog.get_logger(__name__)

FINISHER = "day-closer"  # the principal a finisher's closes are recorded under
# Where a page of a statement's lines continues: after this (account, currency, bucket).
LineKey = tuple[str, str, str]


class DayReconciliation(Protocol):
    @property
    def open(self) -> int:
        """The day's reconciliation breaks still open."""


class ClosingReads(Protocol):
    """What a close reads of the read models (projections/reader.py ``ReadModels``)."""

    def day_statement(self, platform: str, day: str, timezone: str) -> DayStatement: ...

    def day_reconciliation(self, platform: str, day: str) -> DayReconciliation: ...

    def statement_lines(self, platform: str, day: str, limit: int,
                        after: LineKey | None = None) -> list[StatementLine]: ...

    def is_closed(self, platform: str, day: str) -> bool: ...


async def drawn_statement(app: LedgerApplication, models: ClosingReads, platform: str,
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


class Closing:
    """Closes days, on request (``close_day``) and as the server's own chore (``finish``)."""

    def __init__(self, app: LedgerApplication, models: ClosingReads,
                 audit: AuditTrail | None = None) -> None:
        self.app = app
        self.models = models
        self.audit = audit  # signs the head each statement names

    async def close_day(self, steps: Steps, caller: c.Caller, close: c.CloseDay, *,
                        reconciliation_required: bool = True
                        ) -> tuple[Outcome, DayStatement]:
        """Two writes: the day stops taking writes (a backfill could still date one into a
        day that is over), then, once the read models hold the whole log up to there, its
        statement is drawn and the day closed with it. A retry repeats both harmlessly.
        Answers with the second write's outcome and the statement recorded (the first
        recorded, when another close got there first).

        ``reconciliation_required`` (LEDGER_RECONCILIATION): a day with an open break is
        refused, before anything is written."""
        check(close.violations())
        if reconciliation_required:
            await self.check_reconciled(steps, caller.platform_id, close.day)
        await steps.write(caller, c.BeginClosingDay.first_step_of(close))
        await failpoints.reached_async("close_day.after_begin")
        statement = await drawn_statement(self.app, self.models, caller.platform_id,
                                          close.day, steps.caught_up, self.audit)
        outcome, book = await steps.write(caller, dataclasses.replace(close, statement=statement))
        return outcome, book.closed[close.day]

    async def day_statement(self, steps: Steps, platform: str, day: str, *, limit: int,
                            after: LineKey | None = None, first_page: bool = True,
                            min_log_position: int = 0) -> tuple[DayStatement, bool]:
        """The day's statement with a page of ``limit`` lines after ``after``, and whether
        the day is closed. A closed day's summary is the one its close recorded, its lines
        the read models' once they hold that close (or, for a day closed before statements
        were paged, the lines its event holds). An open day's summary is drawn from the read
        models once they hold ``min_log_position``, with its first page only (later pages
        carry lines alone), its lines as the log stands."""
        book = await steps.read(self.app.find, PeriodBook.create_id(platform))
        if book is not None and day in book.closed:
            recorded = book.closed[day]
            if not recorded.lines_recorded and not await steps.read(
                    self.models.is_closed, platform, day):
                await steps.caught_up(await steps.read(self.app.log_position))
            return await self.with_lines(steps, platform, recorded, limit, after,
                                         from_event=recorded.lines_recorded), True
        await steps.caught_up(min_log_position)
        summary = (await steps.read(self.models.day_statement, platform, day, self.app.timezone)
                   if first_page else DayStatement(day, self.app.timezone, (), 0, 0, 0, ""))
        return await self.with_lines(steps, platform, summary, limit, after,
                                     from_event=False), False

    async def with_lines(self, steps: Steps, platform: str, statement: DayStatement, limit: int,
                         after: LineKey | None, *, from_event: bool) -> DayStatement:
        """``statement`` with the page of lines asked for: ``from_event`` (a day closed
        before statements were paged) from its own lines, else from the read models."""
        if from_event:
            lines = [x for x in statement.lines
                     if after is None or (x.account, x.currency, x.bucket) > after][:limit]
        else:
            lines = await steps.read(self.models.statement_lines, platform, statement.day,
                                     limit, after)
        return dataclasses.replace(statement, lines=tuple(lines))

    async def check_reconciled(self, steps: Steps, platform: str, day: str) -> None:
        """Refuses to close a day whose reconciliation has a break open. Checked before the
        day is shut (a refusal leaves nothing written); a bill imported meanwhile is told
        by the statement, which records the state it was drawn with."""
        book = await steps.read(self.app.find, PeriodBook.create_id(platform))
        if book is not None and day in book.closed:
            return  # a repeat of a close that happened: it answers with its statement
        await steps.caught_up(await steps.read(self.app.log_position))
        state = await steps.read(self.models.day_reconciliation, platform, day)
        if state.open:
            raise RuleViolation(
                f"{day} has {state.open} open reconciliation break(s): resolve each with a "
                "correcting write or AcknowledgeBreak (ListBreaks shows them)",
                reason="RECONCILIATION_OPEN")

    async def finish(self, steps: Steps, platforms: Iterable[str]) -> list[tuple[str, str]]:
        """Finishes the closes that were begun and never recorded (a server died between
        the two steps); runs in every server, and two finishing one day record it once
        (their key is the day's, so the second replays the first). Answers (platform, day)
        of each close finished. One aggregate read per platform: a platform no key can call
        has no close to finish."""
        finished = []
        for platform in platforms:
            book = await asyncio.to_thread(self.app.find, PeriodBook.create_id(platform))
            day = book.unfinished if book is not None else ""
            if not day:
                continue
            statement = await drawn_statement(self.app, self.models, platform, day,
                                              steps.caught_up, self.audit)
            caller = c.Caller(platform, FINISHER, "system")
            await steps.write(caller, c.CloseDay(f"finish:{day}", day, statement))
            log.warning("finished a close whose server stopped before recording it",
                        platform=platform, day=day)
            finished.append((platform, day))
        return finished
