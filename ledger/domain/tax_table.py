"""The individual income tax table for labour remuneration (劳务报酬), as versioned data.

Since 2025-10-01 a platform withholds the tax of the individuals it pays by the cumulative
method (SAT announcement No. 16 of 2025): the income ratio (80%), the deduction per month
paid (5,000.00) and the annual brackets are the state's to change, so they are data,
published and effective-dated like commission plans, and each payout records the version
it was computed with. Amounts are in the table's currency's minor unit (fen); rates in
basis points.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.copying import CheapCopy
from ledger.domain.decisions import Decided, Event
from ledger.domain.errors import NotFound, RuleViolation, check
from ledger.domain.ids import stable_id
from ledger.domain.money import MAX_AMOUNT, is_currency
from ledger.domain.plan import EPOCH, FULL_RATE_BPS
from ledger.domain.versions import in_force_at, next_version


@dataclass(frozen=True)
class TaxBracket:
    """Cumulative taxable income up to ``up_to`` (included; 0 on the last bracket: no upper
    bound) is taxed at ``rate_bps`` less ``quick_deduction``."""

    up_to: int
    rate_bps: int
    quick_deduction: int


@dataclass(frozen=True)
class TaxTable:
    version: int
    effective_from: datetime
    brackets: tuple[TaxBracket, ...]
    income_ratio_bps: int = 8000  # the share of labour remuneration that is income
    monthly_deduction: int = 500_000  # per calendar month in which the payee was paid
    currency: str = "CNY"

    def with_version(self, version: int, effective_from: datetime) -> TaxTable:
        return replace(self, version=version, effective_from=effective_from)

    def check_withholds_in(self, currency: str) -> None:
        """Tax is withheld in the table's currency: a payout to an individual in another
        has no table to be withheld by, so it is refused rather than paid untaxed."""
        if currency != self.currency:
            raise RuleViolation(
                f"income tax is withheld in {self.currency}; a payout to an individual in "
                f"{currency} cannot be withheld on", reason="WITHHOLDING_CURRENCY")

    def bracket(self, taxable_e4: int) -> TaxBracket:
        """The bracket of a cumulative taxable income given in 1/10,000 of the minor unit
        (80% of an amount in fen is not always whole fen)."""
        for b in self.brackets:
            if not b.up_to or taxable_e4 <= b.up_to * FULL_RATE_BPS:
                return b
        return self.brackets[-1]


# SAT announcement No. 16 of 2025: the annual table of comprehensive income, in fen.
DEFAULT_TAX_TABLE = TaxTable(
    version=1,
    effective_from=EPOCH,
    brackets=(
        TaxBracket(3_600_000, 300, 0),
        TaxBracket(14_400_000, 1000, 252_000),
        TaxBracket(30_000_000, 2000, 1_692_000),
        TaxBracket(42_000_000, 2500, 3_192_000),
        TaxBracket(66_000_000, 3000, 5_292_000),
        TaxBracket(96_000_000, 3500, 8_592_000),
        TaxBracket(0, 4500, 18_192_000),
    ),
)


def validate_table(table: TaxTable) -> None:
    """Refuses a table that could not be applied to every income: brackets out of order,
    a bounded last bracket, rates or deductions out of range."""
    v: list[tuple[str, str]] = []
    if not is_currency(table.currency):
        v.append(("table.currency", "must be an ISO 4217 code such as CNY"))
    if not 1 <= table.income_ratio_bps <= FULL_RATE_BPS:
        v.append(("table.income_ratio_bps", "must be 1 to 10000 basis points (8000: 80%)"))
    if not 0 <= table.monthly_deduction <= MAX_AMOUNT:
        v.append(("table.monthly_deduction", f"must be 0 to {MAX_AMOUNT} minor units"))
    if not table.brackets:
        v.append(("table.brackets", "must name at least one bracket"))
    previous = 0
    for i, b in enumerate(table.brackets):
        where = f"table.brackets[{i}]"
        last = i == len(table.brackets) - 1
        if last and b.up_to != 0:
            v.append((f"{where}.up_to", "the last bracket has no upper bound: 0"))
        elif not last and not previous < b.up_to <= MAX_AMOUNT:
            v.append((f"{where}.up_to", "must be above the bracket before it (and not 0)"))
        if not 0 <= b.rate_bps <= FULL_RATE_BPS:
            v.append((f"{where}.rate_bps", "must be 0 to 10000 basis points"))
        if not 0 <= b.quick_deduction <= MAX_AMOUNT:
            v.append((f"{where}.quick_deduction", f"must be 0 to {MAX_AMOUNT} minor units"))
        previous = b.up_to
    check(v)


class TaxBook(Decided, CheapCopy, Aggregate):
    """A platform's tax tables: version 1 (the default table) from the beginning of time,
    then each publication, effective from a moment not in the past and not before the
    version it follows. A payout is computed with the table in force when requested."""

    @staticmethod
    def create_id(platform_id: str) -> UUID:
        return stable_id("tax-book", platform_id)

    @event("Opened")
    def __init__(self, platform_id: str, default_table: TaxTable = DEFAULT_TAX_TABLE) -> None:
        self.platform_id = platform_id
        self.tables: list[TaxTable] = [default_table]

    def in_force_at(self, at: datetime) -> TaxTable:
        return in_force_at(self.tables, at)

    def table_version(self, version: int) -> TaxTable:
        if not 1 <= version <= len(self.tables):
            raise NotFound(f"tax table version {version} does not exist")
        return self.tables[version - 1]

    @event("TablePublished")
    def _published(self, table: TaxTable) -> None:
        self.tables.append(table)


@dataclass(frozen=True, slots=True)
class PublishTable:
    table: TaxTable  # its version is the book's to give
    now: datetime


@dataclass(frozen=True, slots=True)
class TablePublished(Event):
    method: ClassVar[str] = "_published"
    table: TaxTable


def decide_publish_table(book: TaxBook, cmd: PublishTable) -> list[Event]:
    validate_table(cmd.table)
    return [TablePublished(next_version(book.tables, cmd.table, now=cmd.now,
                                        field="table.effective_from", what="tax table",
                                        reason="TAX_TABLE_EFFECTIVE_BEFORE_PREVIOUS"))]
