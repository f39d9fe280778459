"""Withholding individual income tax on payouts to individuals, by the cumulative method.

Per payee, platform and calendar year (the platform's time zone), at each payout:

    cumulative income  = the year's gross payouts, this one included
    cumulative taxable = max(0, income × ratio − monthly deduction × months paid)
    cumulative tax     = taxable × rate − quick deduction (the table's bracket), half up
    this payout's tax  = max(0, cumulative tax − tax already withheld this year)

``withhold`` is that arithmetic alone, on integers (80% of an amount in fen is kept in
1/10,000 fen, so nothing is rounded before the tax). ``TaxYear`` holds the year's payouts
of one payee: every payout of the payee in the year goes through it, so two payouts are
never computed from the same figures, and one that fails or is rejected is taken out of
them (its income, its month and its tax), as if never requested.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.copying import CheapCopy
from ledger.domain.decisions import Decided, Event
from ledger.domain.ids import stable_id
from ledger.domain.plan import FULL_RATE_BPS
from ledger.domain.tax_table import TaxTable

SCALE = FULL_RATE_BPS  # taxable income is kept in 1/10,000 of the minor unit
TAX_SCALE = SCALE * FULL_RATE_BPS  # and tax, before rounding, in 1/10^8


@dataclass(frozen=True)
class Withheld:
    """One payout of the year as the cumulative figures count it."""

    payout_id: str
    month: int  # 1 to 12, in the platform's time zone, when it was requested
    gross: int
    tax: int


@dataclass(frozen=True)
class Withholding:
    """One payout's tax and the figures it was computed from."""

    gross: int
    tax: int
    cumulative_income: int
    months: int
    cumulative_taxable: int  # in the minor unit, half up (the tax used the exact figure)
    cumulative_tax: int
    withheld_before: int
    table_version: int

    @property
    def net(self) -> int:
        return self.gross - self.tax


def half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up (for numerator ≥ 0)."""
    return (2 * numerator + denominator) // (2 * denominator)


def cumulative_tax(table: TaxTable, income: int, months: int) -> tuple[int, int]:
    """(taxable income half up, tax half up) on a year's cumulative income so far."""
    taxable_e4 = max(0, income * table.income_ratio_bps - table.monthly_deduction * months * SCALE)
    bracket = table.bracket(taxable_e4)
    tax_e8 = taxable_e4 * bracket.rate_bps - bracket.quick_deduction * TAX_SCALE
    return half_up(taxable_e4, SCALE), max(0, half_up(tax_e8, TAX_SCALE))


def withhold(
    table: TaxTable, earlier: Iterable[Withheld], *, month: int, gross: int
) -> Withholding:
    """The tax on a payout of ``gross`` requested in ``month``, after the year's ``earlier``
    payouts (those still standing: failed and rejected ones are not given)."""
    earlier = list(earlier)
    income = sum(w.gross for w in earlier) + gross
    months = len({w.month for w in earlier} | {month})
    taxable, tax = cumulative_tax(table, income, months)
    before = sum(w.tax for w in earlier)
    return Withholding(
        gross=gross,
        tax=max(0, tax - before),
        cumulative_income=income,
        months=months,
        cumulative_taxable=taxable,
        cumulative_tax=tax,
        withheld_before=before,
        table_version=table.version,
    )


class TaxYear(Decided, CheapCopy, Aggregate):
    """One payee's payouts in one calendar year on one platform."""

    @staticmethod
    def create_id(platform_id: str, account: str, year: int) -> UUID:
        return stable_id("tax-year", platform_id, account, str(year))

    @event("Opened")
    def __init__(self, platform_id: str, account: str, year: int) -> None:
        self.platform_id = platform_id
        self.account = account
        self.year = year
        self.payouts: dict[str, Withheld] = {}

    @event("Withheld")
    def _withheld(
        self,
        payout_id: str,
        month: int,
        gross: int,
        tax: int,
        cumulative_income: int,
        months: int,
        cumulative_taxable: int,
        cumulative_tax: int,
        withheld_before: int,
        table_version: int,
        at: datetime,
    ) -> None:
        self.payouts[payout_id] = Withheld(payout_id, month, gross, tax)

    @event("Released")
    def _released(self, payout_id: str, at: datetime) -> None:
        del self.payouts[payout_id]


@dataclass(frozen=True, slots=True)
class Withhold:
    table: TaxTable
    payout_id: str
    month: int
    gross: int
    at: datetime


@dataclass(frozen=True, slots=True)
class ReleaseTax:
    """A payout failed or was rejected: it leaves the year's figures."""

    payout_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class TaxWithheld(Event):
    method: ClassVar[str] = "_withheld"
    payout_id: str
    month: int
    gross: int
    tax: int
    cumulative_income: int
    months: int
    cumulative_taxable: int
    cumulative_tax: int
    withheld_before: int
    table_version: int
    at: datetime


@dataclass(frozen=True, slots=True)
class TaxReleased(Event):
    method: ClassVar[str] = "_released"
    payout_id: str
    at: datetime


def decide_withhold(year: TaxYear, cmd: Withhold) -> list[Event]:
    w = withhold(cmd.table, year.payouts.values(), month=cmd.month, gross=cmd.gross)
    return [TaxWithheld(cmd.payout_id, cmd.month, cmd.gross, w.tax, w.cumulative_income,
                        w.months, w.cumulative_taxable, w.cumulative_tax, w.withheld_before,
                        w.table_version, cmd.at)]


def decide_release_tax(year: TaxYear, cmd: ReleaseTax) -> list[Event]:
    """A payout the year does not hold (released before) changes nothing."""
    return [TaxReleased(cmd.payout_id, cmd.at)] if cmd.payout_id in year.payouts else []
