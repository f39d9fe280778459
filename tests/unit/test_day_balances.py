"""A key's running balance per day (projections/day_balances.py), as a pure function: the
read model's openings rest on it (tests/integration/test_day_balances.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from ledger.projections.day_balances import running_balances

amounts = st.dictionaries(st.integers(0, 30), st.integers(-1000, 1000), max_size=12)


@settings(max_examples=500, deadline=None)
@given(history=amounts, batch=amounts.filter(bool))
def test_each_days_running_balance_is_the_sum_of_every_amount_up_to_that_day(
    history: dict[int, int], batch: dict[int, int]
) -> None:
    """A key's rows before a batch hold the cumulative sums of its history; after the batch
    (in any days, before, among or after the rows) every row from the batch's first day on
    is the cumulative sum of history and batch, and a row for each day the batch moved."""
    def day(n: int) -> str:
        return f"2026-11-{1 + n:02}"

    def cumulative(amounts: dict[int, int], days: set[int]) -> dict[str, int]:
        return {day(d): sum(v for e, v in amounts.items() if e <= d) for d in days}

    rows = sorted(cumulative(history, set(history)).items())
    first = day(min(batch))
    before = [r for r in rows if r[0] < first]
    known = before[-1:] + [r for r in rows if r[0] >= first]
    both = {d: history.get(d, 0) + batch.get(d, 0) for d in {*history, *batch}}
    expected = cumulative(both, {d for d in both if day(d) >= first})
    assert dict(running_balances(known, {day(d): v for d, v in batch.items()})) == expected


