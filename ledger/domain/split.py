"""The arithmetic of money on an order line: the split on payment, the reversal on refund.

Both are pure functions of their inputs so that the rules can be read, tested and
property-checked without any storage. The results are written into events; a replay never
calls these again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledger.domain.money import PLATFORM, reseller_account, supplier_account
from ledger.domain.plan import FULL_RATE_BPS, CommissionPlan

SUPPLIER = "supplier"
COMMISSION = "commission"
PLATFORM_ROLE = "platform"


@dataclass(frozen=True)
class LineItem:
    line_no: int
    sku: str
    category: str
    quantity: int
    unit_sale_price: int
    unit_supply_price: int
    supplier_id: str

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_sale_price

    @property
    def supply(self) -> int:
        return self.quantity * self.unit_supply_price

    @property
    def margin(self) -> int:
        return self.amount - self.supply


@dataclass(frozen=True)
class UplineMember:
    """A reseller in the upline chain as it stood at payment; level 1 is the seller."""

    reseller_id: str
    rank: str


@dataclass(frozen=True)
class Share:
    """One account's part of one line's money."""

    line_no: int
    account: str
    role: str  # SUPPLIER, COMMISSION or PLATFORM_ROLE
    level: int  # upline level for commission shares, else 0
    rate_bps: int  # commission shares only, else 0
    amount: int


def split_line(
    line: LineItem,
    chain: Sequence[UplineMember],
    plan: CommissionPlan,
    *,
    self_purchase: bool = False,
) -> list[Share]:
    """Splits a paid line: supply price to the supplier, commission up the chain, rest to the
    platform.

    Each level gets floor(margin × rate / 10000); the platform keeps the remainder. A line
    sold at or below its supply price pays no commission, and below it the platform's share is
    negative: the platform absorbs the loss.
    """
    shares = [Share(line.line_no, supplier_account(line.supplier_id), SUPPLIER, 0, 0, line.supply)]
    commissions = 0
    if line.margin > 0:
        for level, member in enumerate(chain[: plan.levels], start=1):
            if level == 1 and self_purchase and plan.exclude_self_purchase:
                continue
            rate = plan.rate_bps(level, sku=line.sku, category=line.category, rank=member.rank)
            amount = line.margin * rate // FULL_RATE_BPS
            commissions += amount
            shares.append(
                Share(
                    line.line_no,
                    reseller_account(member.reseller_id),
                    COMMISSION,
                    level,
                    rate,
                    amount,
                )
            )
        assert commissions <= line.margin, "commissions exceed the line's margin"
    platform = line.amount - line.supply - commissions
    shares.append(Share(line.line_no, PLATFORM, PLATFORM_ROLE, 0, 0, platform))
    assert sum(s.amount for s in shares) == line.amount
    return shares


def reversed_so_far(shares: Sequence[Share], paid: int, refunded: int) -> list[int]:
    """How much of each of a line's shares its refunds have reversed, once ``refunded`` of the
    ``paid`` has been refunded, in the order of ``shares``.

    The one place the reversal is computed: a refund's postings are the difference it makes
    (``reversals_for_refund``), and replaying a Refunded event sets the order's reversed
    figures from it, so deciding and replaying cannot disagree. Every share but the
    platform's reverses in proportion to the cumulative refund: floor(share × refunded /
    paid), so the refund that brings the line to fully refunded reverses exactly what is
    left. The platform's reversal is the rest of what was refunded.
    """
    assert 0 <= refunded <= paid, f"refunded {refunded} of a line paid {paid}"
    platform = [i for i, share in enumerate(shares) if share.role == PLATFORM_ROLE]
    assert len(platform) == 1, "a line always has one platform share"
    if refunded == 0:
        return [0] * len(shares)
    out = [0 if share.role == PLATFORM_ROLE else share.amount * refunded // paid
           for share in shares]
    out[platform[0]] = refunded - sum(out)
    return out


def reversals_for_refund(
    shares: Sequence[Share], paid: int, refunded_before: int, refund: int
) -> list[int]:
    """How much of each share one refund reverses, in the order of ``shares``: what has been
    reversed after it less what had been before it (see ``reversed_so_far``). They add up to
    the refund."""
    assert refund > 0 and refunded_before + refund <= paid
    before = reversed_so_far(shares, paid, refunded_before)
    after = reversed_so_far(shares, paid, refunded_before + refund)
    return [a - b for a, b in zip(after, before, strict=True)]
