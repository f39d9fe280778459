"""Times in the read models: integer microseconds since the epoch (UTC), so they sort and
compare the same way on SQLite and PostgreSQL; months are calendar months in the platform's
time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICRO = timedelta(microseconds=1)
END_OF_TIME = 2**62


def micros(at: datetime) -> int:
    return (at - EPOCH) // MICRO


def from_micros(value: int) -> datetime:
    return EPOCH + value * MICRO


class Calendar:
    """Months as the platform's people see them (Asia/Shanghai unless configured)."""

    def __init__(self, timezone: str = "Asia/Shanghai") -> None:
        self.zone = ZoneInfo(timezone)
        self._last: tuple[datetime, datetime, str] = (EPOCH, EPOCH, "")
        self._last_day: tuple[int, int, str] = (0, 0, "")

    @property
    def timezone(self) -> str:
        return self.zone.key

    def day(self, at: int) -> str:
        """The calendar day (YYYY-MM-DD) of a time in µs. Remembers the last day's bounds,
        as ``month`` does: a movement is booked into its day for every posting."""
        start, end, day = self._last_day
        if start <= at < end:
            return day
        local = from_micros(at).astimezone(self.zone).date()
        first = datetime.combine(local, datetime.min.time(), self.zone)
        self._last_day = (micros(first), micros(first + timedelta(days=1)), local.isoformat())
        return self._last_day[2]

    def month(self, at: datetime) -> str:
        """Remembers the last month's bounds: the log's times come in order, mostly within
        one month, and converting each into the zone was a twentieth of a rebuild."""
        start, end, month = self._last
        if start <= at < end:
            return month
        month = at.astimezone(self.zone).strftime("%Y-%m")
        self._last = (self.month_start(month), self.month_end(month), month)
        return month

    def month_start(self, month: str) -> datetime:
        year, mon = (int(x) for x in month.split("-"))
        return datetime(year, mon, 1, tzinfo=self.zone).astimezone(UTC)

    def month_end(self, month: str) -> datetime:
        year, mon = (int(x) for x in month.split("-"))
        year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
        return datetime(year, mon, 1, tzinfo=self.zone).astimezone(UTC)
