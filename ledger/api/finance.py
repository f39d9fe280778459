"""The FinanceService: payouts, day closing and statements. Needs a finance key."""

from __future__ import annotations

from typing import Any

from ledger.api import convert
from ledger.api import reconciliation as recon
from ledger.api.auth import AUDITOR, FINANCE
from ledger.api.reports import KEY_SEPARATOR, Page, page
from ledger.api.servicers import Base, rpc
from ledger.application import commands as c
from ledger.application.closing import Closing
from ledger.application.reconciliation import Reconciliation
from ledger.application.tax_reports import TaxReports
from ledger.domain.errors import InvalidInput, NotFound, check
from ledger.domain.payout import Payout
from ledger.domain.periods import DayStatement
from ledger.projections.clock import from_micros
from ledger.projections.finance import PayoutRow
from ledger.v1 import finance_pb2, finance_pb2_grpc


def payout_row(p: PayoutRow) -> finance_pb2.Payout:
    return finance_pb2.Payout(
        payout_id=p.payout_id, account=p.account, currency=p.currency, amount=p.amount,
        tax=p.tax, net=p.amount - p.tax, status=convert.PAYOUT_STATUSES[p.status],
        requested_by=p.requested_by,
        requested_at=convert.timestamp(from_micros(p.requested_at)),
        updated_at=convert.timestamp(from_micros(p.updated_at)), reference=p.reference,
        reason=p.reason,
    )


def check_days(*fields: tuple[str, str]) -> None:
    violations: c.Violations = []
    for field, value in fields:
        c.check_day(violations, field, value)
    check(violations)


class FinanceService(Base, finance_pb2_grpc.FinanceServiceServicer):
    def __init__(self, *parts: Any, reconciliation_required: bool = True, **gate: Any) -> None:
        """``reconciliation_required`` (LEDGER_RECONCILIATION): CloseDay refuses a day with
        an open break."""
        super().__init__(*parts, **gate)
        self.reconciliation_required = reconciliation_required
        self.closing = Closing(self.app, self.models, self.audit)
        self.reconciliation = Reconciliation(self.app, self.models)
        self.tax_reports = TaxReports(self.app, self.models)

    @rpc(FINANCE, AUDITOR)
    async def ListPayable(self, request, context, caller):  # type: ignore[no-untyped-def]
        """Continues after the last payout's request time and id (see reports.Page): finance
        approves and pays what it has just listed, and those payouts leave the list."""
        wanted = page(request.page_token, request.page_size)
        position = await self.caught_up(request.min_log_position, context)
        rows = await self.read(self.models.payable, caller.platform_id, wanted.offset,
                               wanted.limit, wanted.after)
        return finance_pb2.ListPayableResponse(
            payouts=[payout_row(p) for p in rows], log_position=position,
            next_page_token=wanted.next_token(rows, lambda p: (p.requested_at, p.payout_id)))

    @rpc(FINANCE)
    async def RequestPayout(self, request, context, caller):  # type: ignore[no-untyped-def]
        command = c.RequestPayout(request.idempotency_key, request.account, request.currency,
                                  request.amount)
        return await self.reply(caller, command, finance_pb2.RequestPayoutResponse,
                                payout=convert.payout)

    @rpc(FINANCE)
    async def ApprovePayout(self, request, context, caller):  # type: ignore[no-untyped-def]
        command = c.ApprovePayout(request.idempotency_key, request.payout_id)
        return await self.reply(caller, command, finance_pb2.ApprovePayoutResponse,
                                payout=convert.payout)

    @rpc(FINANCE)
    async def RejectPayout(self, request, context, caller):  # type: ignore[no-untyped-def]
        command = c.RejectPayout(request.idempotency_key, request.payout_id, request.reason)
        return await self.reply(caller, command, finance_pb2.RejectPayoutResponse,
                                payout=convert.payout)

    @rpc(FINANCE)
    async def MarkPayoutPaid(self, request, context, caller):  # type: ignore[no-untyped-def]
        command = c.MarkPayoutPaid(request.idempotency_key, request.payout_id, request.reference)
        return await self.reply(caller, command, finance_pb2.MarkPayoutPaidResponse,
                                payout=convert.payout)

    @rpc(FINANCE)
    async def MarkPayoutFailed(self, request, context, caller):  # type: ignore[no-untyped-def]
        command = c.MarkPayoutFailed(request.idempotency_key, request.payout_id, request.reason)
        return await self.reply(caller, command, finance_pb2.MarkPayoutFailedResponse,
                                payout=convert.payout)

    @rpc(FINANCE, AUDITOR)
    async def GetPayout(self, request, context, caller):  # type: ignore[no-untyped-def]
        payout = await self.read(self.app.find, Payout.create_id(caller.platform_id,
                                                                 request.payout_id))
        if payout is None:
            raise NotFound(f"payout {request.payout_id} does not exist")
        return finance_pb2.GetPayoutResponse(payout=convert.payout(payout))

    @rpc(FINANCE)
    async def CloseDay(self, request, context, caller):  # type: ignore[no-untyped-def]
        """The close is the application's (two writes with the statement drawn between: see
        ledger/application/closing.py); the answer carries the first page of its lines."""
        check_days(("day", request.day))
        steps = self.steps(context)
        outcome, closed = await self.closing.close_day(
            steps, caller, c.CloseDay(request.idempotency_key, request.day),
            reconciliation_required=self.reconciliation_required)
        wanted = page("", 0)
        recorded = await self.closing.with_lines(steps, caller.platform_id, closed,
                                                 wanted.limit, None,
                                                 from_event=closed.lines_recorded)
        token = line_token(wanted, recorded)
        return finance_pb2.CloseDayResponse(
            statement=convert.day_statement(recorded, closed=True, platform=caller.platform_id),
            receipt=convert.receipt(outcome), next_page_token=token)

    @rpc(FINANCE)
    async def ImportBill(self, request_iterator, context, caller):  # type: ignore[no-untyped-def]
        """The stream is read whole (see reconciliation.read_bill), then imported by the
        application (application/reconciliation.py); the answer carries the day's state."""
        first, data = await recon.read_bill(request_iterator)
        check_days(("day", first.day))
        outcome, bill, day = await self.reconciliation.import_bill(
            self.steps(context), caller, first.idempotency_key, first.day,
            recon.BILL_KINDS[first.kind], recon.FORMATS[first.format], data)
        return finance_pb2.ImportBillResponse(
            digest=bill.digest, lines=bill.line_count,
            already_imported=outcome.ref.already_imported or outcome.replayed,
            day=bill.day, kind=recon.BILL_KIND_ENUMS[bill.kind],
            reconciliation=recon.summary(day), receipt=convert.receipt(outcome))

    @rpc(FINANCE, AUDITOR)
    async def ListBreaks(self, request, context, caller):  # type: ignore[no-untyped-def]
        check_days(("day", request.day))
        if request.kind and request.kind not in recon.BILL_KINDS:
            raise InvalidInput([("kind", "is not a BillKind")])
        if request.status and request.status not in recon.STATUS_NAMES:
            raise InvalidInput([("status", "is not a BreakStatus")])
        wanted = page(request.page_token, request.page_size)
        position = await self.caught_up(request.min_log_position, context)
        rows = await self.read(
            self.models.breaks, caller.platform_id, request.day,
            recon.BILL_KINDS.get(request.kind, ""), recon.STATUS_NAMES.get(request.status, ""),
            wanted.limit, wanted.after[1] if wanted.after else None)
        day = await self.read(self.models.day_reconciliation, caller.platform_id, request.day)
        return finance_pb2.ListBreaksResponse(
            breaks=[recon.break_message(x) for x in rows], reconciliation=recon.summary(day),
            next_page_token=wanted.next_token(rows, lambda x: (0, x.break_id)),
            log_position=position)

    @rpc(FINANCE)
    async def AcknowledgeBreak(self, request, context, caller):  # type: ignore[no-untyped-def]
        """Only an open break is acknowledged (application/reconciliation.py)."""
        command = c.AcknowledgeBreak(request.idempotency_key, request.day, request.break_id,
                                     request.reason)
        outcome, found = await self.reconciliation.acknowledge_break(self.steps(context),
                                                                     caller, command)
        return finance_pb2.AcknowledgeBreakResponse(acknowledged=recon.break_message(found),
                                                    receipt=convert.receipt(outcome))

    @rpc(FINANCE, AUDITOR)
    async def GetDayStatement(self, request, context, caller):  # type: ignore[no-untyped-def]
        """A page of lines (application/closing.py ``Closing.day_statement``)."""
        check_days(("day", request.day))
        wanted = page(request.page_token, request.page_size)
        statement, closed = await self.closing.day_statement(
            self.steps(context), caller.platform_id, request.day, limit=wanted.limit,
            after=line_after(wanted.after), first_page=not request.page_token,
            min_log_position=request.min_log_position)
        return finance_pb2.GetDayStatementResponse(
            statement=convert.day_statement(statement, closed=closed,
                                            platform=caller.platform_id if closed else ""),
            next_page_token=line_token(wanted, statement))

    @rpc(FINANCE, AUDITOR)
    async def GetAccountStatement(self, request, context, caller):  # type: ignore[no-untyped-def]
        """A page of movements, and the totals of the whole range on every page."""
        check_days(("from_day", request.from_day), ("to_day", request.to_day))
        if request.to_day < request.from_day:
            raise InvalidInput([("to_day", "must not be before from_day")])
        if not request.account:
            raise InvalidInput([("account", "is required, e.g. reseller:carol")])
        wanted = page(request.page_token, request.page_size)
        after = movement_after(wanted.after)
        position = await self.caught_up(request.min_log_position, context)
        movements = await self.read(
            self.models.account_movements, caller.platform_id, request.account,
            request.from_day, request.to_day, self.app.timezone, wanted.limit, after)
        totals = await self.read(self.models.account_totals, caller.platform_id,
                                 request.account, request.from_day, request.to_day,
                                 self.app.timezone)
        return finance_pb2.GetAccountStatementResponse(
            account=request.account,
            movements=[finance_pb2.AccountMovement(
                position=m.position, at=convert.timestamp(from_micros(m.at)),
                currency=m.currency, bucket=m.bucket, amount=m.amount, kind=m.kind,
                source=m.source) for m in movements],
            totals=[convert.statement_line(line) for line in totals], log_position=position,
            next_page_token=wanted.next_token(movements, lambda m: (m.at, KEY_SEPARATOR.join(
                (str(m.position), m.currency, m.bucket)))))

    @rpc(FINANCE)
    async def CloseQuarter(self, request, context, caller):  # type: ignore[no-untyped-def]
        """Drawn and recorded by the application (application/tax_reports.py); the answer
        shows each payee as the caller may see them."""
        outcome, report = await self.tax_reports.close_quarter(
            self.steps(context), caller, c.CloseQuarter(request.idempotency_key, request.quarter))
        return finance_pb2.CloseQuarterResponse(
            report=await self.read(self.payees.report, caller, report),
            receipt=convert.receipt(outcome))


def line_token(wanted: Page, statement: DayStatement) -> str:
    """The token of the page after ``statement``'s lines: its last line's key."""
    return wanted.next_token(statement.lines, lambda x: (0, KEY_SEPARATOR.join(
        (x.account, x.currency, x.bucket))))


def line_after(after: tuple[int, str] | None) -> tuple[str, str, str] | None:
    """A statement page token's last line (account, currency, bucket)."""
    if after is None:
        return None
    parts = after[1].split(KEY_SEPARATOR)
    if len(parts) != 3:
        raise InvalidInput([("page_token", "is not a token this service gave")])
    return parts[0], parts[1], parts[2]


def movement_after(after: tuple[int, str] | None) -> tuple[int, int, str, str] | None:
    """An account statement page token's last movement (time, position, currency, bucket)."""
    if after is None:
        return None
    parts = after[1].split(KEY_SEPARATOR)
    if len(parts) != 3 or not parts[0].isdigit():
        raise InvalidInput([("page_token", "is not a token this service gave")])
    return after[0], int(parts[0]), parts[1], parts[2]
