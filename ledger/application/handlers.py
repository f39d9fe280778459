"""One function per command: load what it needs, let the domain decide, stage the result.

Handlers run inside a batch (see group_commit.py) on a UnitOfWork; they never save. Each
returns a ResultRef naming the aggregate and version that answer the request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.application import commands as c
from ledger.application.idempotency import ResultRef
from ledger.application.unit_of_work import UnitOfWork
from ledger.domain.errors import AccessDenied, AlreadyExists, NotFound, RuleViolation
from ledger.domain.order import Order, RefundLine
from ledger.domain.plan import CommissionPlan
from ledger.domain.plan_book import PlanBook
from ledger.domain.split import LineItem, UplineMember
from ledger.domain.team import CustomerBinding, Reseller, check_no_cycle

ORDER = "order"
RESELLER = "reseller"
BINDING = "binding"
PLAN = "plan"


@dataclass(frozen=True)
class Context:
    """What every handler works with: the batch's unit of work, who asks, and when."""

    uow: UnitOfWork
    caller: c.Caller
    now: datetime
    timezone: str


def ref(kind: str, aggregate: Any, detail: str = "") -> ResultRef:
    return ResultRef(kind, aggregate.id, aggregate.version, detail)


# --- loading -------------------------------------------------------------------------------


def own_order(uow: UnitOfWork, caller: c.Caller, order_id: str) -> Order:
    """The caller's order; another storefront's order is refused, not shown."""
    order = uow.get(Order, Order.create_id(caller.platform_id, order_id), f"order {order_id}")
    if order.storefront_id != caller.principal:
        raise AccessDenied(f"order {order_id} belongs to another storefront")
    return order


def reseller(uow: UnitOfWork, platform_id: str, reseller_id: str) -> Reseller:
    return uow.get(
        Reseller, Reseller.create_id(platform_id, reseller_id), f"reseller {reseller_id}"
    )


def binding(uow: UnitOfWork, platform_id: str, customer_id: str) -> CustomerBinding | None:
    return uow.find(CustomerBinding, CustomerBinding.create_id(platform_id, customer_id))


def plan_book(uow: UnitOfWork, platform_id: str) -> PlanBook:
    """The platform's plan book, opened with the default plan on first use."""
    book = uow.find(PlanBook, PlanBook.create_id(platform_id))
    if book is None:
        book = PlanBook(platform_id)
        uow.add(book)
    return book


def upline(uow: UnitOfWork, platform_id: str, seller_id: str, levels: int) -> list[UplineMember]:
    """The seller, the seller's sponsor, … as they stand now, ``levels`` deep at most."""
    chain: list[UplineMember] = []
    current = seller_id
    while current and len(chain) < levels:
        member = reseller(uow, platform_id, current)
        chain.append(UplineMember(member.reseller_id, member.rank))
        current = member.sponsor_id
    return chain


# --- storefront commands -------------------------------------------------------------------


def place_order(ctx: Context, cmd: c.PlaceOrder) -> ResultRef:
    """Attributes the order: the named reseller, else the customer's bound reseller, else none.

    A customer's first attributed order binds them to its reseller (锁粉) when unbound.
    """
    platform = ctx.caller.platform_id
    if ctx.uow.find(Order, Order.create_id(platform, cmd.order_id)) is not None:
        raise AlreadyExists(f"order {cmd.order_id} already exists")
    bound = binding(ctx.uow, platform, cmd.customer_id)
    seller_id = cmd.reseller_id
    if seller_id:
        reseller(ctx.uow, platform, seller_id)
        if bound is None:
            ctx.uow.add(CustomerBinding(platform, cmd.customer_id, seller_id, ctx.now))
    elif bound is not None:
        seller_id = bound.reseller_id
    lines = [
        LineItem(i, n.sku, n.category, n.quantity, n.unit_sale_price, n.unit_supply_price,
                 n.supplier_id)
        for i, n in enumerate(cmd.lines, start=1)
    ]
    order = Order(platform, cmd.order_id, ctx.caller.principal, cmd.customer_id, seller_id,
                  cmd.currency, lines, ctx.now)
    ctx.uow.add(order)
    return ref(ORDER, order)


def pay_order(ctx: Context, cmd: c.PayOrder) -> ResultRef:
    """Splits with the plan in force now along the upline chain as it stands now."""
    order = own_order(ctx.uow, ctx.caller, cmd.order_id)
    plan = plan_book(ctx.uow, ctx.caller.platform_id).in_force_at(ctx.now)
    chain = upline(ctx.uow, ctx.caller.platform_id, order.seller_id, plan.levels)
    platform = ctx.caller.platform_id
    seller_customer = (
        reseller(ctx.uow, platform, order.seller_id).customer_id if order.seller_id else ""
    )
    order.pay(
        payment_id=cmd.payment_id,
        amount=cmd.amount,
        plan=plan,
        chain=chain,
        self_purchase=bool(seller_customer) and seller_customer == order.customer_id,
        at=ctx.now,
    )
    return ref(ORDER, order)


def complete_order(ctx: Context, cmd: c.CompleteOrder) -> ResultRef:
    order = own_order(ctx.uow, ctx.caller, cmd.order_id)
    order.complete(at=ctx.now)
    return ref(ORDER, order)


def cancel_order(ctx: Context, cmd: c.CancelOrder) -> ResultRef:
    order = own_order(ctx.uow, ctx.caller, cmd.order_id)
    order.cancel(reason=cmd.reason, at=ctx.now)
    return ref(ORDER, order)


def refund_order(ctx: Context, cmd: c.RefundOrder) -> ResultRef:
    order = own_order(ctx.uow, ctx.caller, cmd.order_id)
    order.refund(
        refund_id=cmd.refund_id,
        lines=[RefundLine(line.line_no, line.amount) for line in cmd.lines],
        reason=cmd.reason,
        at=ctx.now,
    )
    return ref(ORDER, order, cmd.refund_id)


def open_after_sale(ctx: Context, cmd: c.OpenAfterSale) -> ResultRef:
    order = own_order(ctx.uow, ctx.caller, cmd.order_id)
    order.open_after_sale(case_id=cmd.case_id, line_no=cmd.line_no, reason=cmd.reason)
    return ref(ORDER, order)


def close_after_sale(ctx: Context, cmd: c.CloseAfterSale) -> ResultRef:
    order = own_order(ctx.uow, ctx.caller, cmd.order_id)
    order.close_after_sale(case_id=cmd.case_id, resolution=cmd.resolution)
    return ref(ORDER, order)


def enroll_reseller(ctx: Context, cmd: c.EnrollReseller) -> ResultRef:
    """A customer becoming a reseller keeps the reseller they were bound to as sponsor,
    unless the request names another sponsor or asks for none."""
    platform = ctx.caller.platform_id
    if ctx.uow.find(Reseller, Reseller.create_id(platform, cmd.reseller_id)) is not None:
        raise AlreadyExists(f"reseller {cmd.reseller_id} already exists")
    sponsor_id = cmd.sponsor_id
    if sponsor_id:
        reseller(ctx.uow, platform, sponsor_id)
    elif cmd.customer_id and not cmd.without_sponsor:
        bound = binding(ctx.uow, platform, cmd.customer_id)
        sponsor_id = bound.reseller_id if bound is not None else ""
    new = Reseller(platform, cmd.reseller_id, sponsor_id, cmd.customer_id, ctx.now)
    ctx.uow.add(new)
    return ref(RESELLER, new)


def bind_customer(ctx: Context, cmd: c.BindCustomer) -> ResultRef:
    """The first binding stands: binding again to the same reseller changes nothing."""
    reseller(ctx.uow, ctx.caller.platform_id, cmd.reseller_id)
    bound = binding(ctx.uow, ctx.caller.platform_id, cmd.customer_id)
    if bound is None:
        bound = CustomerBinding(ctx.caller.platform_id, cmd.customer_id, cmd.reseller_id, ctx.now)
        ctx.uow.add(bound)
    elif bound.reseller_id != cmd.reseller_id:
        raise RuleViolation(
            f"customer {cmd.customer_id} is bound to {bound.reseller_id}; only an admin rebinds",
            reason="CUSTOMER_ALREADY_BOUND",
        )
    return ref(BINDING, bound)


# --- admin commands ------------------------------------------------------------------------


def publish_plan(ctx: Context, cmd: c.PublishPlan) -> ResultRef:
    book = plan_book(ctx.uow, ctx.caller.platform_id)
    plan = CommissionPlan(
        version=0,
        effective_from=cmd.effective_from or ctx.now,
        level_rates_bps=cmd.level_rates_bps,
        overrides=cmd.overrides,
        freeze_days=cmd.freeze_days,
        min_payout=cmd.min_payout,
        exclude_self_purchase=cmd.exclude_self_purchase,
    )
    published = book.publish(plan, now=ctx.now)
    return ref(PLAN, book, str(published.version))


def move_reseller(ctx: Context, cmd: c.MoveReseller) -> ResultRef:
    """Only orders paid after the move see the new chain; history is never rewritten."""
    platform = ctx.caller.platform_id
    moving = reseller(ctx.uow, platform, cmd.reseller_id)
    if cmd.new_sponsor_id:
        reseller(ctx.uow, platform, cmd.new_sponsor_id)
        check_no_cycle(cmd.reseller_id, cmd.new_sponsor_id,
                       lambda rid: reseller(ctx.uow, platform, rid).sponsor_id)
    moving.move(new_sponsor_id=cmd.new_sponsor_id, reason=cmd.reason, at=ctx.now)
    return ref(RESELLER, moving)


def set_rank(ctx: Context, cmd: c.SetRank) -> ResultRef:
    ranked = reseller(ctx.uow, ctx.caller.platform_id, cmd.reseller_id)
    ranked.set_rank(rank=cmd.rank, at=ctx.now)
    return ref(RESELLER, ranked)


def set_team_target(ctx: Context, cmd: c.SetTeamTarget) -> ResultRef:
    leader = reseller(ctx.uow, ctx.caller.platform_id, cmd.reseller_id)
    leader.set_team_target(month=cmd.month, currency=cmd.currency, amount=cmd.amount, at=ctx.now)
    return ref(RESELLER, leader)


def rebind_customer(ctx: Context, cmd: c.RebindCustomer) -> ResultRef:
    reseller(ctx.uow, ctx.caller.platform_id, cmd.reseller_id)
    bound = binding(ctx.uow, ctx.caller.platform_id, cmd.customer_id)
    if bound is None:
        raise NotFound(f"customer {cmd.customer_id} is not bound to any reseller")
    bound.rebind(reseller_id=cmd.reseller_id, reason=cmd.reason, at=ctx.now)
    return ref(BINDING, bound)


HANDLERS: dict[type[c.Command], Callable[[Context, Any], ResultRef]] = {
    c.PlaceOrder: place_order,
    c.PayOrder: pay_order,
    c.CompleteOrder: complete_order,
    c.CancelOrder: cancel_order,
    c.RefundOrder: refund_order,
    c.OpenAfterSale: open_after_sale,
    c.CloseAfterSale: close_after_sale,
    c.EnrollReseller: enroll_reseller,
    c.BindCustomer: bind_customer,
    c.PublishPlan: publish_plan,
    c.MoveReseller: move_reseller,
    c.SetRank: set_rank,
    c.RebindCustomer: rebind_customer,
    c.SetTeamTarget: set_team_target,
}
