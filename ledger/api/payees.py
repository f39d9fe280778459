"""Payees as the API shows them: the identity opened for finance keys only, and the tax
reports with each payee's line."""

from __future__ import annotations

from typing import Any

from ledger.adapters.identity_vault import VaultError, VaultFile
from ledger.api import convert
from ledger.api.auth import FINANCE
from ledger.application import commands as c
from ledger.domain.errors import RuleViolation
from ledger.domain.payee import BUSINESS, INDIVIDUAL, Payee
from ledger.domain.quarters import QuarterReport
from ledger.v1 import tax_pb2

KINDS = {tax_pb2.PAYEE_KIND_INDIVIDUAL: INDIVIDUAL, tax_pb2.PAYEE_KIND_BUSINESS: BUSINESS}
KIND_CODES = {v: k for k, v in KINDS.items()}


class PayeeViews:
    """Reads payees from the log (no writer involved) and shows them to a role."""

    def __init__(self, app: Any, vault: VaultFile) -> None:
        self.app = app
        self.vault = vault

    def message(self, platform: str, account: str, payee: Payee | None, role: str) -> tax_pb2.Payee:
        if payee is None:
            return tax_pb2.Payee(account=account, recorded=False)
        message = tax_pb2.Payee(
            account=account,
            kind=KIND_CODES[payee.kind],
            tax_id=payee.tax_id,
            has_identity=payee.identity is not None,
            recorded=True,
            identity_key_id=payee.identity.key_id if payee.identity else "",
            updated_at=convert.timestamp(payee.updated_at),
        )
        if role == FINANCE and payee.identity is not None:
            try:
                identity = self.vault.get().open(
                    payee.identity, platform_id=platform, account=account
                )
            except VaultError as error:
                raise RuleViolation(str(error), reason="IDENTITY_KEY_UNAVAILABLE") from None
            message.identity.CopyFrom(
                tax_pb2.PayeeIdentity(
                    name=identity.name, id_type=identity.id_type, id_number=identity.id_number
                )
            )
        return message

    def payees(self, platform: str, accounts: set[str], role: str) -> dict[str, tax_pb2.Payee]:
        return {
            account: self.message(
                platform, account, self.app.find(Payee.create_id(platform, account)), role
            )
            for account in sorted(accounts)
        }

    def report(self, caller: c.Caller, report: QuarterReport) -> tax_pb2.QuarterReport:
        payees = self.payees(caller.platform_id, {x.account for x in report.lines}, caller.role)
        message = tax_pb2.QuarterReport(
            quarter=report.quarter,
            timezone=report.timezone,
            closed=report.closed_at is not None,
            last_position=report.last_position,
            lines=[
                tax_pb2.QuarterReportLine(
                    payee=payees[x.account],
                    currency=x.currency,
                    earned=x.earned,
                    clawed_back=x.clawed_back,
                    net=x.net,
                    paid_gross=x.paid_gross,
                    tax_withheld=x.tax_withheld,
                )
                for x in report.lines
            ],
        )
        if report.closed_at is not None:
            message.closed_at.CopyFrom(convert.timestamp(report.closed_at))
        return message

