"""Withholding by the cumulative method (DOMAIN.md "Tax on commission paid to individuals"),
on the pure arithmetic, the year's figures and the versioned tax table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.errors import InvalidInput, RuleViolation
from ledger.domain.tax_table import (
    DEFAULT_TAX_TABLE,
    TaxBook,
    TaxBracket,
    TaxTable,
    validate_table,
)
from ledger.domain.withholding import TaxYear, Withheld, cumulative_tax, withhold
from tests.unit.deciding import publish_in, release_in, withhold_in

T0 = datetime(2026, 1, 15, 4, tzinfo=UTC)
# DOMAIN.md's table, as written there: (cumulative taxable up to, in yuan; rate; quick
# deduction, in yuan). Written out again here so a slip in the data is caught.
DOMAIN_TABLE = [
    (36_000, Fraction(3, 100), 0),
    (144_000, Fraction(10, 100), 2_520),
    (300_000, Fraction(20, 100), 16_920),
    (420_000, Fraction(25, 100), 31_920),
    (660_000, Fraction(30, 100), 52_920),
    (960_000, Fraction(35, 100), 85_920),
    (None, Fraction(45, 100), 181_920),
]


def reference_tax(income_fen: int, months: int) -> int:
    """DOMAIN.md's cumulative tax on a year's income, in fen, computed in exact fractions of
    a yuan and rounded half up to the fen with decimal: independent of the ledger's code."""
    taxable = max(Fraction(0), Fraction(income_fen, 100) * Fraction(8, 10) - 5_000 * months)
    for up_to, rate, quick in DOMAIN_TABLE:
        if up_to is None or taxable <= up_to:
            tax = taxable * rate - quick
            break
    exact = Decimal(tax.numerator) / Decimal(tax.denominator)
    return max(0, int((exact * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)))


def test_danas_four_payouts_give_domain_md_figures_to_the_fen() -> None:
    year = TaxYear("acme", "reseller:dana", 2026)
    first = withhold_in(year, DEFAULT_TAX_TABLE, payout_id="p1", month=1, gross=800_000, at=T0)
    assert (first.cumulative_taxable, first.tax, first.net) == (140_000, 4_200, 795_800)
    second = withhold_in(year, DEFAULT_TAX_TABLE, payout_id="p2", month=1, gross=200_000, at=T0)
    assert (second.cumulative_taxable, second.cumulative_tax, second.tax) == (300_000, 9_000, 4_800)
    third = withhold_in(year, DEFAULT_TAX_TABLE, payout_id="p3", month=3, gross=300_000, at=T0)
    assert (third.months, third.cumulative_taxable, third.cumulative_tax, third.tax) == (
        2,
        40_000,
        1_200,
        0,
    )
    fourth = withhold_in(year, DEFAULT_TAX_TABLE, payout_id="p4", month=4, gross=6_000_000, at=T0)
    assert (
        fourth.months,
        fourth.cumulative_taxable,
        fourth.cumulative_tax,
        fourth.tax,
        fourth.net,
    ) == (3, 4_340_000, 182_000, 173_000, 5_827_000)
    assert sum(w.tax for w in year.payouts.values()) == 182_000


def test_a_failed_payout_leaves_no_trace_in_the_next_payouts_tax() -> None:
    year = TaxYear("acme", "reseller:dana", 2026)
    withhold_in(year, DEFAULT_TAX_TABLE, payout_id="p1", month=1, gross=800_000, at=T0)
    withhold_in(year, DEFAULT_TAX_TABLE, payout_id="failed", month=2, gross=5_000_000, at=T0)
    release_in(year, payout_id="failed", at=T0)
    release_in(year, payout_id="failed", at=T0)  # a second release changes nothing
    after = withhold_in(year, DEFAULT_TAX_TABLE, payout_id="p2", month=1, gross=200_000, at=T0)
    assert (after.cumulative_income, after.months, after.tax) == (1_000_000, 1, 4_800)


def test_bracket_edges_are_included_in_the_lower_bracket() -> None:
    # Taxable exactly 36,000.00: 3%, 1,080.00; one fen more of taxable: 10% − 2,520.
    income_at_edge = (3_600_000 + 500_000) * 10 // 8  # taxable 36,000.00 with one month
    assert cumulative_tax(DEFAULT_TAX_TABLE, income_at_edge, 1) == (3_600_000, 108_000)
    above = cumulative_tax(DEFAULT_TAX_TABLE, income_at_edge + 5, 1)  # +4 fen taxable
    assert above == (3_600_004, 108_000) == (3_600_004, reference_tax(income_at_edge + 5, 1))


def test_tax_rounds_half_up_to_the_fen() -> None:
    # Income 5,000.05 in one month: taxable 0.04 (80% of 5,000.05 − 5,000 = −999.96 → 0);
    # income 6,250.21: taxable 0.168 → tax 0.00504 → 0.01 (half up of 0.504 fen is 1 fen).
    assert cumulative_tax(DEFAULT_TAX_TABLE, 500_005, 1) == (0, 0)
    taxable, tax = cumulative_tax(DEFAULT_TAX_TABLE, 625_021, 1)
    assert (taxable, tax) == (17, 1)
    assert reference_tax(625_021, 1) == 1


payouts = st.lists(
    st.tuples(st.integers(1, 12), st.integers(1, 50_000_000), st.booleans()),
    min_size=1,
    max_size=12,
)


@given(payouts=payouts)
def test_withheld_total_is_the_cumulative_tax_whenever_not_clamped(payouts) -> None:  # type: ignore[no-untyped-def]
    """Payouts in month order (failed ones among them): each tax is never negative; failed
    ones are gone from the figures; the months are those paid; and whenever a payout's tax
    is not clamped at zero, the year's withheld total is exactly DOMAIN.md's cumulative tax
    on the year's income."""
    year = TaxYear("acme", "reseller:p", 2026)
    standing: list[tuple[int, int]] = []
    for n, (month, gross, fails) in enumerate(sorted(payouts, key=lambda p: p[0])):
        w = withhold_in(year, DEFAULT_TAX_TABLE, payout_id=f"p{n}", month=month, gross=gross, at=T0)
        assert w.tax >= 0 and w.net == gross - w.tax
        income = sum(g for _, g in standing) + gross
        months = len({m for m, _ in standing} | {month})
        assert (w.cumulative_income, w.months) == (income, months)
        assert w.cumulative_tax == reference_tax(income, months)
        withheld = sum(x.tax for x in year.payouts.values())
        if w.cumulative_tax >= w.withheld_before:
            assert withheld == w.cumulative_tax
        else:
            assert w.tax == 0
        if fails:
            release_in(year, payout_id=f"p{n}", at=T0)
        else:
            standing.append((month, gross))
    assert [(w.month, w.gross) for w in year.payouts.values()] == standing


@given(
    earlier=st.lists(st.tuples(st.integers(1, 12), st.integers(1, 10_000_000)), max_size=8),
    failed=st.lists(st.tuples(st.integers(1, 12), st.integers(1, 10_000_000)), max_size=4),
    month=st.integers(1, 12),
    gross=st.integers(1, 10_000_000),
)
def test_failed_payouts_leave_no_trace_in_the_cumulative_figures(  # type: ignore[no-untyped-def]
    earlier, failed, month, gross
) -> None:
    """The tax on a payout after some payouts failed is the tax it would have had if they
    had never been requested."""
    with_failures = TaxYear("acme", "reseller:p", 2026)
    without = TaxYear("acme", "reseller:p", 2026)
    for n, (m, g) in enumerate(earlier):
        withhold_in(with_failures, DEFAULT_TAX_TABLE, payout_id=f"e{n}", month=m, gross=g, at=T0)
        withhold_in(without, DEFAULT_TAX_TABLE, payout_id=f"e{n}", month=m, gross=g, at=T0)
        if n < len(failed):
            fm, fg = failed[n]
            withhold_in(with_failures, DEFAULT_TAX_TABLE, payout_id=f"f{n}", month=fm,
                        gross=fg, at=T0)
            release_in(with_failures, payout_id=f"f{n}", at=T0)
    assert withhold_in(with_failures,
        DEFAULT_TAX_TABLE, payout_id="x", month=month, gross=gross, at=T0
    ) == withhold_in(without, DEFAULT_TAX_TABLE, payout_id="x", month=month, gross=gross, at=T0)


@given(months=st.lists(st.integers(1, 12), min_size=1, max_size=20))
def test_the_month_count_is_the_distinct_months_paid(months) -> None:  # type: ignore[no-untyped-def]
    earlier = [Withheld(f"p{n}", m, 100, 0) for n, m in enumerate(months[:-1])]
    w = withhold(DEFAULT_TAX_TABLE, earlier, month=months[-1], gross=100)
    assert w.months == len(set(months))


def test_business_sized_incomes_do_not_overflow_and_stay_exact() -> None:
    income = 10**13
    assert cumulative_tax(DEFAULT_TAX_TABLE, income, 12)[1] == reference_tax(income, 12)


def test_the_default_table_is_domain_md_table() -> None:
    assert [(b.up_to, b.rate_bps, b.quick_deduction) for b in DEFAULT_TAX_TABLE.brackets] == [
        ((u or 0) * 100, int(r * 10_000), q * 100) for u, r, q in DOMAIN_TABLE
    ]
    assert (DEFAULT_TAX_TABLE.income_ratio_bps, DEFAULT_TAX_TABLE.monthly_deduction) == (
        8000,
        500_000,
    )


def test_tax_tables_are_versioned_and_effective_dated() -> None:
    book = TaxBook("acme")
    later = T0 + timedelta(days=30)
    higher = TaxTable(0, later, (TaxBracket(0, 2000, 0),), monthly_deduction=600_000)
    published = publish_in(book, higher, now=T0)
    assert published.version == 2
    assert book.in_force_at(T0).version == 1
    assert book.in_force_at(later) == published
    assert book.table_version(1) == DEFAULT_TAX_TABLE
    with pytest.raises(InvalidInput, match="past"):
        publish_in(book, higher, now=later + timedelta(seconds=1))
    with pytest.raises(RuleViolation) as before:
        publish_in(book, higher.with_version(0, T0 + timedelta(days=1)), now=T0)
    assert before.value.reason == "TAX_TABLE_EFFECTIVE_BEFORE_PREVIOUS"


@pytest.mark.parametrize(
    ("brackets", "field"),
    [
        ((), "table.brackets"),
        ((TaxBracket(100, 300, 0),), "table.brackets[0].up_to"),
        (
            (TaxBracket(100, 300, 0), TaxBracket(50, 1000, 0), TaxBracket(0, 2000, 0)),
            "table.brackets[1].up_to",
        ),
        ((TaxBracket(0, 10_001, 0),), "table.brackets[0].rate_bps"),
        ((TaxBracket(0, 300, -1),), "table.brackets[0].quick_deduction"),
    ],
)
def test_a_table_that_cannot_tax_every_income_is_refused(brackets, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as refused:
        validate_table(TaxTable(0, T0, brackets))
    assert field in dict(refused.value.violations)
