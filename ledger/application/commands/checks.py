"""The checks on a request's shape that many commands share: identifiers, free text,
amounts, calendar days and months, and who is asking.

They look only at the request itself; rules that depend on what the ledger already holds live
in the domain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from ledger.domain.money import MAX_AMOUNT
from ledger.domain.periods import FIRST_YEAR, LAST_YEAR
from ledger.domain.quarters import parse_quarter

MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 1000
MAX_LINES = 500
MAX_QUANTITY = 1_000_000

Violations = list[tuple[str, str]]


@dataclass(frozen=True)
class Caller:
    """Who is asking: the tenant (platform), the authenticated principal within it, and the
    role of its key (storefront, admin, finance)."""

    platform_id: str
    principal: str
    role: str = ""


def check_id(v: Violations, field: str, value: str, *, required: bool = True) -> None:
    if not value:
        if required:
            v.append((field, "is required"))
        return
    if len(value) > MAX_ID_LENGTH:
        v.append((field, f"must be at most {MAX_ID_LENGTH} characters"))
    if not value.isprintable() or value != value.strip():
        v.append((field, "must be printable, without surrounding spaces"))


def check_text(v: Violations, field: str, value: str) -> None:
    if len(value) > MAX_TEXT_LENGTH:
        v.append((field, f"must be at most {MAX_TEXT_LENGTH} characters"))


IN_CALENDAR = f"must be in the years {FIRST_YEAR} to {LAST_YEAR}"


def check_day(v: Violations, field: str, value: str) -> None:
    """A calendar day written as YYYY-MM-DD."""
    try:
        if len(value) != 10:
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        v.append((field, "must be a calendar day as YYYY-MM-DD"))
        return
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        v.append((field, IN_CALENDAR))


def check_month(v: Violations, field: str, value: str) -> None:
    """A calendar month written as YYYY-MM."""
    if not MONTH.match(value):
        v.append((field, "must be a calendar month as YYYY-MM"))
    elif not FIRST_YEAR <= int(value[:4]) <= LAST_YEAR:
        v.append((field, IN_CALENDAR))


def check_amount(v: Violations, field: str, value: int, *, positive: bool = False) -> None:
    low = 1 if positive else 0
    if not low <= value <= MAX_AMOUNT:
        v.append((field, f"must be {low} to {MAX_AMOUNT} minor units"))


MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")


def check_payee_account(v: Violations, field: str, account: str) -> None:
    kind, _, owner = account.partition(":")
    if kind not in ("reseller", "supplier") or not owner:
        v.append((field, "must be reseller:<id> or supplier:<id>"))
    check_id(v, field, account)


def check_quarter(v: Violations, field: str, value: str) -> None:
    """A calendar quarter written as YYYYQn."""
    try:
        year, _ = parse_quarter(value)
    except ValueError:
        v.append((field, "must be a calendar quarter as YYYYQn, e.g. 2026Q1"))
        return
    if not FIRST_YEAR <= year <= LAST_YEAR:
        v.append((field, IN_CALENDAR))
