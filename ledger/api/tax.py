"""The TaxService: payees, the tax table and the tax reports (ledger/v1/tax.proto).

Identities are opened with the identity vault for finance keys only; any other key gets
the payee without them. The API layer translates and seals; the rules are the domain's.
"""

from __future__ import annotations

from typing import Any

from ledger.adapters.identity_vault import Identity
from ledger.api import convert
from ledger.api.auth import ADMIN, AUDITOR, FINANCE
from ledger.api.payees import KINDS
from ledger.api.servicers import Base, rpc
from ledger.application import commands as c
from ledger.application.payees import record_payee
from ledger.application.tax_reports import TaxReports
from ledger.domain.errors import check
from ledger.domain.payee import Payee
from ledger.domain.tax_table import TaxBracket, TaxTable
from ledger.projections.clock import Calendar, micros
from ledger.v1 import tax_pb2, tax_pb2_grpc


def table_message(t: TaxTable) -> tax_pb2.TaxTable:
    return tax_pb2.TaxTable(
        version=t.version,
        effective_from=convert.timestamp(t.effective_from),
        brackets=[
            tax_pb2.TaxBracket(
                up_to=b.up_to, rate_bps=b.rate_bps, quick_deduction=b.quick_deduction
            )
            for b in t.brackets
        ],
        income_ratio_bps=t.income_ratio_bps,
        monthly_deduction=t.monthly_deduction,
        currency=t.currency,
    )


def publish_command(r: tax_pb2.PublishTaxTableRequest) -> c.PublishTaxTable:
    t = r.table
    return c.PublishTaxTable(
        r.idempotency_key,
        convert.from_timestamp(t.effective_from, t.HasField("effective_from")),
        tuple(TaxBracket(b.up_to, b.rate_bps, b.quick_deduction) for b in t.brackets),
        t.income_ratio_bps,
        t.monthly_deduction,
        t.currency or "CNY",
    )


class TaxService(Base, tax_pb2_grpc.TaxServiceServicer):
    def __init__(self, *parts: Any, **gate: Any) -> None:
        super().__init__(*parts, **gate)
        self.tax_reports = TaxReports(self.app, self.models)

    # --- payees --------------------------------------------------------------------------

    @rpc(FINANCE)
    async def RecordPayee(self, request, context, caller):  # type: ignore[no-untyped-def]
        """Recorded by the application (application/payees.py), the identity sealed with
        this server's vault; the answer shows the identity to finance."""
        given = request.identity
        identity = (
            Identity(given.name, given.id_type, given.id_number)
            if any((given.name, given.id_type, given.id_number))
            else None
        )
        outcome, payee = await record_payee(
            self.steps(context),
            caller,
            request.idempotency_key,
            request.account,
            KINDS.get(request.kind, ""),
            request.tax_id,
            identity,
            lambda clear: self.payees.vault.get().seal(
                clear, platform_id=caller.platform_id, account=request.account
            ),
        )
        return tax_pb2.RecordPayeeResponse(
            payee=self.payees.message(caller.platform_id, request.account, payee, caller.role),
            receipt=convert.receipt(outcome),
        )

    @rpc(FINANCE, ADMIN, AUDITOR)
    async def GetPayee(self, request, context, caller):  # type: ignore[no-untyped-def]
        violations: c.Violations = []
        c.check_payee_account(violations, "account", request.account)
        check(violations)
        payee = await self.read(self.app.find, Payee.create_id(caller.platform_id, request.account))
        return tax_pb2.GetPayeeResponse(
            payee=self.payees.message(caller.platform_id, request.account, payee, caller.role)
        )

    # --- the tax table -------------------------------------------------------------------

    @rpc(ADMIN, FINANCE)
    async def PublishTaxTable(self, request, context, caller):  # type: ignore[no-untyped-def]
        outcome, book = await self.write(caller, publish_command(request))
        return tax_pb2.PublishTaxTableResponse(
            table=table_message(book.table_version(outcome.ref.published_version)),
            receipt=convert.receipt(outcome),
        )

    @rpc(ADMIN, FINANCE, AUDITOR)
    async def GetTaxTable(self, request, context, caller):  # type: ignore[no-untyped-def]
        at = convert.from_timestamp(request.at, request.HasField("at"))
        table = await self.read(
            self.app.tax_table, caller.platform_id, version=request.version, at=at
        )
        return tax_pb2.GetTaxTableResponse(table=table_message(table))

    # --- reports -------------------------------------------------------------------------

    @rpc(FINANCE, AUDITOR)
    async def GetMonthlyWithholding(self, request, context, caller):  # type: ignore[no-untyped-def]
        violations: c.Violations = []
        c.check_month(violations, "month", request.month)
        check(violations)
        position = await self.caught_up(request.min_log_position, context)
        calendar = Calendar(self.app.timezone)
        lines = await self.read(
            self.models.monthly_withholding,
            caller.platform_id,
            micros(calendar.month_start(request.month)),
            micros(calendar.month_end(request.month)),
        )
        payees = await self.read(
            self.payees.payees, caller.platform_id, {x.account for x in lines}, caller.role
        )
        return tax_pb2.GetMonthlyWithholdingResponse(
            month=request.month,
            log_position=position,
            payees=[
                tax_pb2.MonthlyWithholding(
                    payee=payees[x.account],
                    currency=x.currency,
                    payouts=x.payouts,
                    gross=x.gross,
                    tax=x.tax,
                    net=x.gross - x.tax,
                )
                for x in lines
            ],
        )

    @rpc(FINANCE, AUDITOR)
    async def GetQuarterReport(self, request, context, caller):  # type: ignore[no-untyped-def]
        report = await self.tax_reports.quarter_report(
            self.steps(context), caller, request.quarter, request.min_log_position
        )
        return tax_pb2.GetQuarterReportResponse(
            report=await self.read(self.payees.report, caller, report)
        )
