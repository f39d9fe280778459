"""What every handler works with: the batch's unit of work, who asks and when, and the
lookups that load aggregates by their business keys (opening books and wallets on first
use). No business rule lives here: handlers load with these, let the domain decide, and
record what it decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from ledger.application import commands as c
from ledger.application.idempotency import KeyBook, ResultRef
from ledger.application.unit_of_work import UnitOfWork
from ledger.domain.errors import NotFound
from ledger.domain.money import Posting
from ledger.domain.order import Order
from ledger.domain.payout import Payout
from ledger.domain.periods import PeriodBook, local_day
from ledger.domain.plan_book import PlanBook
from ledger.domain.split import UplineMember
from ledger.domain.tax_table import TaxBook
from ledger.domain.team import CustomerBinding, Reseller
from ledger.domain.wallet import Wallet, decide_move, wallet_moves

# How far two servers' clocks may be apart: one may take a day for over (and close it) this
# long before another stops writing into it.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Context:
    """What every handler works with: the batch's unit of work, who asks, and when."""

    uow: UnitOfWork
    caller: c.Caller
    now: datetime  # when the command happens: set back for a backfill's dated steps
    timezone: str
    clock: datetime | None = None  # when it runs: ``now`` before any setting back
    keys: KeyBook | None = None  # the batch's idempotency keys, for a command that asks

    def __post_init__(self) -> None:
        if self.clock is None:
            object.__setattr__(self, "clock", self.now)


def ref(ctx: Context, kind: str, aggregate: Any, **typed: Any) -> ResultRef:
    """The answer: ``aggregate`` at the version the command leaves it (what it decided
    included), with the typed fields of ResultRef its kind of answer carries (refund_id=…,
    published_version=…)."""
    return ResultRef(kind, aggregate.id, ctx.uow.version(aggregate), **typed)


def find_order(uow: UnitOfWork, platform_id: str, storefront_id: str, order_id: str
               ) -> Order | None:
    """The storefront's order of that id, or None. Another storefront's order of the same
    id is another order: it is never found here, so a storefront learns nothing of it.

    An order placed before ids were scoped to storefronts is found under the id it was
    placed with, by its own storefront only."""
    order = uow.find(Order, Order.create_id(platform_id, storefront_id, order_id))
    if order is None:
        order = uow.find(Order, Order.legacy_id(platform_id, order_id))
        if order is not None and not order.placed_by(storefront_id):
            return None
    return order


def order_ids(platform_id: str, storefront_id: str, order_id: str) -> tuple[UUID, UUID]:
    """Where ``find_order`` looks for an order."""
    return (Order.create_id(platform_id, storefront_id, order_id),
            Order.legacy_id(platform_id, order_id))


def own_order(uow: UnitOfWork, caller: c.Caller, order_id: str) -> Order:
    """The caller's order: any other id, another storefront's included, is not found."""
    order = find_order(uow, caller.platform_id, caller.principal, order_id)
    if order is None:
        raise NotFound(f"order {order_id} does not exist")
    return order


def reseller(uow: UnitOfWork, platform_id: str, reseller_id: str) -> Reseller:
    return uow.get(
        Reseller, Reseller.create_id(platform_id, reseller_id), f"reseller {reseller_id}"
    )


def binding(uow: UnitOfWork, platform_id: str, customer_id: str) -> CustomerBinding | None:
    return uow.find(CustomerBinding, CustomerBinding.create_id(platform_id, customer_id))


def bound_reseller_id(uow: UnitOfWork, platform_id: str, customer_id: str) -> str:
    """The reseller the customer is bound to, "" when unbound (or no customer named)."""
    bound = binding(uow, platform_id, customer_id) if customer_id else None
    return bound.reseller_id if bound is not None else ""


def find_or_open(uow: UnitOfWork, cls: Any, *key: Any) -> Any:
    """The aggregate ``cls`` of that key (its create_id's and its constructor's arguments),
    opened on first use: books, wallets, a payee's tax year."""
    found = uow.find(cls, cls.create_id(*key))
    if found is None:
        found = cls(*key)
        uow.add(found)
    return found


def plan_book(uow: UnitOfWork, platform_id: str) -> PlanBook:
    """The platform's plan book, opened with the default plan on first use."""
    book: PlanBook = find_or_open(uow, PlanBook, platform_id)
    return book


def tax_book(uow: UnitOfWork, platform_id: str) -> TaxBook:
    """The platform's tax tables, opened with the default table on first use."""
    book: TaxBook = find_or_open(uow, TaxBook, platform_id)
    return book


def upline(uow: UnitOfWork, platform_id: str, seller_id: str, levels: int,
           at: datetime | None = None) -> list[UplineMember]:
    """The seller, the seller's sponsor, … with their ranks, ``levels`` deep at most: as
    they stand now, or as they stood at ``at``."""
    chain: list[UplineMember] = []
    current = seller_id
    while current and len(chain) < levels:
        member = reseller(uow, platform_id, current)
        if at is None:
            chain.append(UplineMember(member.reseller_id, member.rank))
            current = member.sponsor_id
        else:
            chain.append(UplineMember(member.reseller_id, member.rank_at(at)))
            current = member.sponsor_at(at)
    return chain


def periods(ctx: Context) -> PeriodBook:
    """The platform's settlement periods; money is never recorded into a closed day."""
    book = ctx.uow.find(PeriodBook, PeriodBook.create_id(ctx.caller.platform_id))
    if book is None:
        book = PeriodBook(ctx.caller.platform_id, ctx.timezone)
        ctx.uow.add(book)
    return book


def check_open(ctx: Context) -> None:
    """Refuses a write dated into a closed day, or one being closed. A write dated into a
    day that may be over (a backfill, or the last minutes of today on a clock behind another
    server's) commits only if the book is unchanged by then: a close begun after this read
    would draw the day's statement without it, and the write would land in the day after."""
    book = periods(ctx)
    book.check_open(ctx.now)
    assert ctx.clock is not None
    if local_day(ctx.now, book.timezone) < local_day(ctx.clock + CLOCK_SKEW, book.timezone):
        ctx.uow.keep_unchanged(book)


def wallet(ctx: Context, account: str, currency: str) -> Wallet:
    found: Wallet = find_or_open(ctx.uow, Wallet, ctx.caller.platform_id, account, currency)
    return found


def move_wallets(ctx: Context, postings: Sequence[Posting], source: str) -> None:
    """Records on each wallet what the postings move (``wallet_moves`` decides which): no
    rule can refuse a move, so it may be recorded once the command has decided the rest."""
    for move in wallet_moves(postings):
        found = wallet(ctx, move.account, move.currency)
        ctx.uow.record(found, decide_move(found, move, source))


def own_payout(ctx: Context, payout_id: str) -> Payout:
    return ctx.uow.get(Payout, Payout.create_id(ctx.caller.platform_id, payout_id),
                       f"payout {payout_id}")
