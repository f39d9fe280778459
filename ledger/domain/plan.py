"""Commission plans: versioned, effective-dated rules for splitting a line's margin.

A rate is in basis points (1/100 of a percent) of the line's margin. A plan names a default
rate per upline level (level 1 is the seller) and overrides by product, category and the
rank of the reseller who earns the share; the most specific wins: product, category, rank,
default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import product as cartesian

from ledger.domain.errors import check

MAX_LEVELS = 3  # deeper chains are pyramid selling under Chinese law
FULL_RATE_BPS = 10_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

PRODUCT = "product"
CATEGORY = "category"
RANK = "rank"
SCOPES = (PRODUCT, CATEGORY, RANK)


@dataclass(frozen=True)
class RateOverride:
    scope: str  # PRODUCT, CATEGORY or RANK
    key: str  # the sku, the category or the rank
    level: int
    rate_bps: int


@dataclass(frozen=True)
class CommissionPlan:
    version: int
    effective_from: datetime
    level_rates_bps: tuple[int, ...]
    overrides: tuple[RateOverride, ...] = ()
    freeze_days: int = 7
    min_payout: int = 1000
    exclude_self_purchase: bool = False
    _index: dict[tuple[str, str, int], int] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for o in self.overrides:
            self._index[(o.scope, o.key, o.level)] = o.rate_bps

    @property
    def levels(self) -> int:
        return len(self.level_rates_bps)

    def rate_bps(
        self, level: int, *, sku: str | None, category: str | None, rank: str | None
    ) -> int:
        """The rate for one level of one line: product, then category, then rank, then default."""
        for scope, key in ((PRODUCT, sku), (CATEGORY, category), (RANK, rank)):
            rate = self._index.get((scope, key, level))
            if rate is not None:
                return rate
        return self.level_rates_bps[level - 1]

    def worst_case_total_bps(self) -> int:
        """The highest total rate any line could pay across all levels.

        A line has one sku and one category; each level's beneficiary may have any rank.
        """
        skus = [None, *sorted({o.key for o in self.overrides if o.scope == PRODUCT})]
        categories = [None, *sorted({o.key for o in self.overrides if o.scope == CATEGORY})]
        ranks: list[str | None] = sorted({o.key for o in self.overrides if o.scope == RANK})
        worst = 0
        for sku, category in cartesian(skus, categories):
            total = 0
            for level in range(1, self.levels + 1):
                total += max(
                    self.rate_bps(level, sku=sku, category=category, rank=rank)
                    for rank in [*ranks, None]
                )
            worst = max(worst, total)
        return worst

    def with_version(self, version: int, effective_from: datetime) -> CommissionPlan:
        return replace(self, version=version, effective_from=effective_from)


DEFAULT_PLAN = CommissionPlan(
    version=1,
    effective_from=EPOCH,
    level_rates_bps=(4000, 1000),
    freeze_days=7,
    min_payout=1000,
)


def validate_plan(plan: CommissionPlan) -> None:
    """Refuses a plan a finance team could not defend: too deep, odd rates, over 100%."""
    v: list[tuple[str, str]] = []
    if not 1 <= plan.levels <= MAX_LEVELS:
        v.append(("plan.level_rates_bps", f"must name 1 to {MAX_LEVELS} levels"))
    for i, rate in enumerate(plan.level_rates_bps):
        if not 0 <= rate <= FULL_RATE_BPS:
            v.append((f"plan.level_rates_bps[{i}]", "must be 0 to 10000 basis points"))
    seen: set[tuple[str, str, int]] = set()
    for i, o in enumerate(plan.overrides):
        where = f"plan.overrides[{i}]"
        if o.scope not in SCOPES:
            v.append((f"{where}.scope", "must be product, category or rank"))
        if not o.key:
            v.append((f"{where}.key", "must name the sku, category or rank"))
        if not 1 <= o.level <= max(plan.levels, 1):
            v.append((f"{where}.level", "must be one of the plan's levels"))
        if not 0 <= o.rate_bps <= FULL_RATE_BPS:
            v.append((f"{where}.rate_bps", "must be 0 to 10000 basis points"))
        if (o.scope, o.key, o.level) in seen:
            v.append((where, "duplicates an earlier override"))
        seen.add((o.scope, o.key, o.level))
    if plan.freeze_days < 0 or plan.freeze_days > 365:
        v.append(("plan.freeze_days", "must be 0 to 365"))
    if plan.min_payout < 0:
        v.append(("plan.min_payout", "must not be negative"))
    check(v)
    if plan.worst_case_total_bps() > FULL_RATE_BPS:
        check([("plan", "the rates of some line would add up to more than 100% of its margin")])
