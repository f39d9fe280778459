"""The platform's calendar (projections/clock.py): months in its time zone."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from ledger.projections.clock import Calendar


@given(st.lists(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                             timezones=st.just(UTC)), min_size=1, max_size=50),
       st.sampled_from(["Asia/Shanghai", "Asia/Kathmandu", "America/St_Johns", "UTC"]))
def test_calendar_month_remembers_bounds_without_changing_answers(
        times: list[datetime], zone: str) -> None:
    calendar = Calendar(zone)
    for at in times:
        assert calendar.month(at) == at.astimezone(calendar.zone).strftime("%Y-%m")
