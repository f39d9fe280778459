"""The versioned, effective-dated rules a platform publishes: its commission plan and its
tax table. Their checks are the domain's (ledger/domain/plan.py, tax_table.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ledger.application.commands.base import Command
from ledger.domain.plan import RateOverride
from ledger.domain.tax_table import TaxBracket


@dataclass(frozen=True)
class PublishPlan(Command):
    effective_from: datetime | None
    level_rates_bps: tuple[int, ...]
    overrides: tuple[RateOverride, ...]
    freeze_days: int
    min_payout: int
    exclude_self_purchase: bool


@dataclass(frozen=True)
class PublishTaxTable(Command):
    effective_from: datetime | None
    brackets: tuple[TaxBracket, ...]
    income_ratio_bps: int
    monthly_deduction: int
    currency: str
