"""Refunds of an order: what a refund may ask, and the postings that reverse its shares.

Refunds may be partial, per line, many times, never more than a line was paid. Each one
reverses every share of the refunded lines but the platform's in proportion to the
cumulative refund (``split.reversed_so_far``), so the last refund of a line reverses exactly
what is left; the platform reverses the rest of the refund.

Pure functions of the order's recorded figures: the Order aggregate calls them to decide a
refund, and replays the Refunded event with the same ``reversed_so_far``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ledger.domain.errors import InvalidInput, RuleViolation
from ledger.domain.money import CLEARING, CUSTOMER_FUNDS, Posting, assert_balanced, merge_postings
from ledger.domain.split import Share, reversals_for_refund


@dataclass(frozen=True)
class RefundLine:
    line_no: int
    amount: int


@dataclass(frozen=True)
class RefundRecord:
    refund_id: str
    lines: tuple[RefundLine, ...]
    postings: tuple[Posting, ...]
    refunded_at: datetime
    reason: str

    @property
    def amount(self) -> int:
        return sum(line.amount for line in self.lines)


def check_refund_lines(paid_by_line: Mapping[int, int], refunded_by_line: Mapping[int, int],
                       lines: Sequence[RefundLine]) -> None:
    """Refunds name real lines, each once, positive amounts, and never exceed what a line
    was paid (``paid_by_line``) less what was refunded of it before."""
    if not lines:
        raise InvalidInput([("lines", "a refund names at least one line")])
    seen: set[int] = set()
    for i, refund_line in enumerate(lines):
        paid = paid_by_line.get(refund_line.line_no)
        if paid is None:
            raise InvalidInput(
                [(f"lines[{i}].line_no", f"order has no line {refund_line.line_no}")])
        if refund_line.line_no in seen:
            raise InvalidInput([(f"lines[{i}].line_no", "names a line twice")])
        seen.add(refund_line.line_no)
        if refund_line.amount <= 0:
            raise InvalidInput([(f"lines[{i}].amount", "must be positive")])
        left = paid - refunded_by_line.get(refund_line.line_no, 0)
        if refund_line.amount > left:
            raise RuleViolation(
                f"refund of {refund_line.amount} on line {refund_line.line_no} exceeds "
                f"the {left} left to refund of the {paid} paid",
                reason="REFUND_EXCEEDS_PAID",
            )


def refund_postings(shares: Sequence[Share], paid_by_line: Mapping[int, int],
                    refunded_by_line: Mapping[int, int], lines: Sequence[RefundLine], *,
                    currency: str, bucket: str) -> tuple[Posting, ...]:
    """The customer's money back out of clearing, and each share of the refunded lines
    reversed from ``bucket`` (frozen before settlement, available after: a clawback)."""
    postings: list[Posting] = []
    for refund_line in lines:
        postings.append(Posting(CUSTOMER_FUNDS, CLEARING, currency, refund_line.amount))
        line_shares = [s for s in shares if s.line_no == refund_line.line_no]
        deltas = reversals_for_refund(
            line_shares,
            paid=paid_by_line[refund_line.line_no],
            refunded_before=refunded_by_line[refund_line.line_no],
            refund=refund_line.amount,
        )
        postings += [Posting(share.account, bucket, currency, -delta)
                     for share, delta in zip(line_shares, deltas, strict=True)]
    merged = merge_postings(postings)
    assert_balanced(merged)
    return merged
