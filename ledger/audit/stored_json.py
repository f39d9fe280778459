"""The stored JSON of the events that move money, read as docs/audit-format.md ("Reading
events") describes it: postings, refunds, statements and their lines, times and time zones.

Nothing of the ledger's transcoder or domain is used, on purpose (see replay.py): what is
read here is only what the format says.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# The fields of our value objects, in the order they are written as lists (events written
# before that hold them by name instead; both are read).
POSTING = ("account", "bucket", "currency", "amount")
REFUND = ("refund_id", "lines", "postings", "refunded_at", "reason")
DAY_STATEMENT = ("day", "timezone", "lines", "events", "first_position", "last_position",
                 "digest", "tree_size", "tree_root", "head_signed_at_us", "head_key_id",
                 "head_signature", "moved_lines", "moved_lines_digest", "reconciliation")
STATEMENT_LINE = ("account", "currency", "opening", "movements", "closing", "bucket")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

Key = tuple[str, str, str]  # account, currency, bucket
Line = tuple[int, dict[str, int], int]  # opening, movements by kind, closing


class Unreadable(ValueError):
    """A value of an event that is not as docs/audit-format.md says it is."""


def field_of(event: dict[str, Any], name: str) -> Any:
    try:
        return event[name]
    except KeyError:
        raise Unreadable(f"it has no {name!r}") from None


def values_of(value: Any, type_name: str, fields: tuple[str, ...]) -> list[Any]:
    """A value object's fields in ``fields`` order, written as a list (now) or by name
    (before); fields added later and absent read as ''."""
    if type(value) is not dict or value.get("_type_") != type_name:
        raise Unreadable(f"{value!r:.80} is not a {type_name}")
    data = value.get("_data_")
    if type(data) is list:
        if len(data) > len(fields):
            raise Unreadable(f"a {type_name} with {len(data)} fields")
        return data + [""] * (len(fields) - len(data))
    if type(data) is dict:
        return [data.get(name, "") for name in fields]
    raise Unreadable(f"a {type_name} whose data is {data!r:.80}")


def posting_of(value: Any) -> tuple[Key, int]:
    account, bucket, currency, amount = values_of(value, "posting", POSTING)
    if not (type(account) is str and type(bucket) is str and type(currency) is str
            and type(amount) is int):
        raise Unreadable(f"a posting {value!r:.120} is not (account, bucket, currency, "
                         "integer amount)")
    return (account, currency, bucket), amount


def statement_line_of(value: Any) -> tuple[Key, Line]:
    account, currency, opening, movements, closing, bucket = values_of(
        value, "statement_line", STATEMENT_LINE)
    if not (type(account) is str and type(currency) is str and type(bucket) is str
            and type(opening) is int and type(closing) is int and type(movements) is list
            and all(type(m) is list and len(m) == 2 and type(m[0]) is str
                    and type(m[1]) is int for m in movements)):
        raise Unreadable(f"a statement line {value!r:.160} is not (account, currency, "
                         "opening, [[kind, amount]…], closing, bucket)")
    kinds: dict[str, int] = {}
    for kind, amount in movements:
        kinds[kind] = kinds.get(kind, 0) + amount
    return (account, currency, bucket), (opening, kinds, closing)


def micros(value: Any) -> int:
    """A stored datetime as µs since the epoch (UTC)."""
    if type(value) is not dict or value.get("_type_") != "datetime_iso":
        raise Unreadable(f"{value!r:.80} is not a datetime")
    try:
        at = datetime.fromisoformat(value["_data_"])
    except (TypeError, ValueError, KeyError):
        raise Unreadable(f"{value!r:.80} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise Unreadable(f"{value['_data_']} has no UTC offset")
    return (at - EPOCH) // MICROSECOND


def zone(name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise Unreadable(f"{name!r} is not an IANA time zone") from None


def day_bounds(day: date, timezone: ZoneInfo) -> tuple[int, int]:
    """[start, end) of a calendar day in a time zone, in µs since the epoch."""
    start = datetime.combine(day, datetime.min.time(), timezone)
    return (start - EPOCH) // MICROSECOND, (start + timedelta(days=1) - EPOCH) // MICROSECOND
