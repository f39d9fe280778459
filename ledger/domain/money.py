"""Money: integer minor units with an ISO 4217 code, and double-entry postings.

There are no floats anywhere in the ledger. An amount is an ``int`` count of the currency's
minor unit (fen for CNY); the currency code travels beside it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from iso4217 import Currency

PLATFORM = "platform"
CUSTOMER_FUNDS = "clearing:customer-funds"
# Income tax withheld from individuals' payouts, owed to the tax authority until remitted.
TAX_PAYABLE = "tax:payable"
FROZEN = "frozen"
AVAILABLE = "available"
IN_FLIGHT = "in_flight"
PAID_OUT = "paid_out"
CLEARING = "clearing"

# The largest amount one line may carry: far above any real sale, far below int64 overflow
# even after multiplying by a rate or a refunded amount in the split arithmetic.
MAX_AMOUNT = 10**13


def supplier_account(supplier_id: str) -> str:
    return f"supplier:{supplier_id}"


def reseller_account(reseller_id: str) -> str:
    return f"reseller:{reseller_id}"


def is_currency(code: str) -> bool:
    """True for an active ISO 4217 code that has a minor unit (so not XAU, XXX…)."""
    try:
        currency = Currency(code)
    except ValueError:
        return False
    return code.isupper() and currency.exponent is not None


def minor_exponent(code: str) -> int:
    """Digits after the decimal point: 2 for CNY, 0 for JPY."""
    exponent = Currency(code).exponent
    assert exponent is not None, code
    return exponent


@dataclass(frozen=True)
class Posting:
    """One leg of a financial event: an amount owed to (+) or taken from (−) an account."""

    account: str
    bucket: str
    currency: str
    amount: int


def totals_by_currency(postings: Iterable[Posting]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for posting in postings:
        totals[posting.currency] += posting.amount
    return dict(totals)


def assert_balanced(postings: Iterable[Posting]) -> None:
    """Double entry: every financial event's postings sum to zero per currency."""
    unbalanced = {c: t for c, t in totals_by_currency(postings).items() if t != 0}
    assert not unbalanced, f"postings do not sum to zero: {unbalanced}"


def merge_postings(postings: Iterable[Posting]) -> tuple[Posting, ...]:
    """Adds up postings to the same account, bucket and currency, keeping first-seen order."""
    merged: dict[tuple[str, str, str], int] = {}
    for p in postings:
        key = (p.account, p.bucket, p.currency)
        merged[key] = merged.get(key, 0) + p.amount
    return tuple(Posting(a, b, c, amount) for (a, b, c), amount in merged.items() if amount != 0)
