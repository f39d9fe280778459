"""One function per command: load what it needs, let the domain decide, stage the result.

Handlers run inside a batch (see group_commit.py) on a UnitOfWork; they never save. Each
returns a ResultRef naming the aggregate and version that answer the request. The
storefront's and the admin's commands are here, finance's (settlement, payouts, closing,
bills, payees and tax) in finance_handlers.py; HANDLERS maps every command to its handler.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any
from uuid import UUID

from ledger.application import commands as c
from ledger.application import finance_handlers as f
from ledger.application.context import (
    Context,
    binding,
    bound_reseller_id,
    check_open,
    find_order,
    move_wallets,
    order_ids,
    own_order,
    plan_book,
    ref,
    reseller,
    upline,
)
from ledger.application.idempotency import (
    BINDING,
    ORDER,
    PLAN,
    RESELLER,
    IdempotencyRecord,
    Key,
    ResultRef,
)
from ledger.domain.attribution import (
    attributed_seller,
    first_binding_stands,
    is_self_purchase,
    order_binds_customer,
    sponsor_of_new_reseller,
)
from ledger.domain.errors import AlreadyExists, InvalidInput, NotFound
from ledger.domain.order import Order
from ledger.domain.payee import Payee
from ledger.domain.payout import Payout
from ledger.domain.periods import PeriodBook
from ledger.domain.plan import CommissionPlan
from ledger.domain.plan_book import PlanBook
from ledger.domain.refunds import RefundLine
from ledger.domain.split import LineItem
from ledger.domain.tax_table import TaxBook
from ledger.domain.team import CustomerBinding, Reseller, check_no_cycle, enroll

# --- storefront commands -------------------------------------------------------------------


def place_order(ctx: Context, cmd: c.PlaceOrder) -> ResultRef:
    """Attributes the order: the named reseller, else the customer's bound reseller, else none.

    A customer's first attributed order binds them to its reseller (锁粉) when unbound.
    """
    platform = ctx.caller.platform_id
    if find_order(ctx.uow, platform, ctx.caller.principal, cmd.order_id) is not None:
        raise AlreadyExists(f"order {cmd.order_id} already exists")
    if cmd.reseller_id:
        reseller(ctx.uow, platform, cmd.reseller_id)
    bound = bound_reseller_id(ctx.uow, platform, cmd.customer_id)
    if order_binds_customer(cmd.reseller_id, bound):
        ctx.uow.add(CustomerBinding(platform, cmd.customer_id, cmd.reseller_id, ctx.now))
    seller_id = attributed_seller(cmd.reseller_id, bound)
    lines = [
        LineItem(i, n.sku, n.category, n.quantity, n.unit_sale_price, n.unit_supply_price,
                 n.supplier_id)
        for i, n in enumerate(cmd.lines, start=1)
    ]
    order = Order(platform, cmd.order_id, ctx.caller.principal, cmd.customer_id, seller_id,
                  cmd.currency, lines, ctx.now)
    ctx.uow.add(order)
    return ref(ORDER, order)


def pay_order(ctx: Context, cmd: c.PayOrder, *, backdated: bool = False) -> ResultRef:
    """Splits with the plan in force now along the upline chain as it stands now: "now" in
    log order, so a move recorded before the payment counts whatever the servers' clocks say.
    A backdated payment (a backfill) takes the chain and ranks as they stood at its time."""
    order = own_order(ctx.uow, ctx.caller, cmd.order_id)
    plan = plan_book(ctx.uow, ctx.caller.platform_id).in_force_at(ctx.now)
    chain = upline(ctx.uow, ctx.caller.platform_id, order.seller_id, plan.levels,
                   at=ctx.now if backdated else None)
    platform = ctx.caller.platform_id
    seller = reseller(ctx.uow, platform, order.seller_id) if order.seller_id else None
    if seller is not None and backdated:
        # A payment recorded now comes after the seller's enrolment in the log (the seller
        # existed when the order was placed), whatever the servers' clocks say.
        seller.check_enrolled_by(ctx.now)
    seller_customer = seller.customer_id if seller is not None else ""
    check_open(ctx)
    order.pay(
        payment_id=cmd.payment_id,
        amount=cmd.amount,
        plan=plan,
        chain=chain,
        self_purchase=is_self_purchase(seller_customer, order.customer_id),
        at=ctx.now,
        backdated=backdated,
    )
    return ref(ORDER, order)


def complete_order(ctx: Context, cmd: c.CompleteOrder) -> ResultRef:
    order = own_order(ctx.uow, ctx.caller, cmd.order_id)
    order.complete(at=ctx.now)
    return ref(ORDER, order)


def import_order(ctx: Context, cmd: c.ImportOrder) -> ResultRef:
    """The storefront's three writes (place, pay in full, complete) as one command, so a
    bulk import pays for one idempotency key and one lookup per order, not three.

    A backfill gives each step its own time: each runs as if the clock read that time (the
    plan in force then, the upline chain and ranks then, the day it lands in, which must
    still be open), but none may be in the future."""
    placed, paid, completed = cmd.times(ctx.now)
    assert placed <= paid <= completed, "ImportOrder.violations lets through no other order"
    late = [(name, "must not be in the future") for name, at in cmd.dated() if at > ctx.now]
    if late:
        raise InvalidInput(late)
    place_order(dataclasses.replace(ctx, now=placed), cmd)
    order = own_order(ctx.uow, ctx.caller, cmd.order_id)
    pay_order(dataclasses.replace(ctx, now=paid),
              c.PayOrder(cmd.idempotency_key, cmd.order_id, cmd.payment_id, order.total),
              backdated=bool(cmd.paid_at or cmd.placed_at))
    if cmd.completed:
        complete_order(dataclasses.replace(ctx, now=completed),
                       c.CompleteOrder(cmd.idempotency_key, cmd.order_id))
    return ref(ORDER, order)


def cancel_order(ctx: Context, cmd: c.CancelOrder) -> ResultRef:
    order = own_order(ctx.uow, ctx.caller, cmd.order_id)
    order.cancel(reason=cmd.reason, at=ctx.now)
    return ref(ORDER, order)


def refund_order(ctx: Context, cmd: c.RefundOrder) -> ResultRef:
    """A refund after settlement takes the money back from available balances (clawback),
    which may leave a debt."""
    order = own_order(ctx.uow, ctx.caller, cmd.order_id)
    check_open(ctx)
    record = order.refund(
        refund_id=cmd.refund_id,
        lines=[RefundLine(line.line_no, line.amount) for line in cmd.lines],
        reason=cmd.reason,
        at=ctx.now,
    )
    move_wallets(ctx, record.postings, f"refund:{order.name}/{cmd.refund_id}")
    return ref(ORDER, order, refund_id=cmd.refund_id)


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
    sponsor_id = sponsor_of_new_reseller(
        cmd.sponsor_id, bound_reseller_id(ctx.uow, platform, cmd.customer_id),
        without_sponsor=cmd.without_sponsor)
    sponsor = None
    if sponsor_id:
        sponsor = ctx.uow.find(Reseller, Reseller.create_id(platform, sponsor_id))
        if sponsor is None:
            raise NotFound(f"sponsor {sponsor_id} does not exist", reason="SPONSOR_NOT_FOUND")
    new = enroll(platform, cmd.reseller_id, sponsor=sponsor, customer_id=cmd.customer_id,
                 asked=cmd.enrolled_at, now=ctx.now,
                 rank=cmd.rank if isinstance(cmd, c.ImportReseller) else "")
    ctx.uow.add(new)
    return ref(RESELLER, new)


def bind_customer(ctx: Context, cmd: c.BindCustomer) -> ResultRef:
    """The first binding stands: binding again to the same reseller changes nothing, to
    another is refused."""
    platform = ctx.caller.platform_id
    reseller(ctx.uow, platform, cmd.reseller_id)
    bound = binding(ctx.uow, platform, cmd.customer_id)
    if not first_binding_stands(cmd.customer_id, bound.reseller_id if bound else "",
                                cmd.reseller_id):
        bound = CustomerBinding(platform, cmd.customer_id, cmd.reseller_id, ctx.now)
        ctx.uow.add(bound)
    assert bound is not None
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
    return ref(PLAN, book, published_version=published.version)


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
    c.ImportOrder: import_order,
    c.CompleteOrder: complete_order,
    c.CancelOrder: cancel_order,
    c.RefundOrder: refund_order,
    c.OpenAfterSale: open_after_sale,
    c.CloseAfterSale: close_after_sale,
    c.EnrollReseller: enroll_reseller,
    c.ImportReseller: enroll_reseller,
    c.BindCustomer: bind_customer,
    c.PublishPlan: publish_plan,
    c.MoveReseller: move_reseller,
    c.SetRank: set_rank,
    c.RebindCustomer: rebind_customer,
    c.SetTeamTarget: set_team_target,
    c.RunSettlement: f.run_settlement,
    c.RequestPayout: f.request_payout,
    c.ApprovePayout: f.approve_payout,
    c.RejectPayout: f.reject_payout,
    c.MarkPayoutPaid: f.mark_payout_paid,
    c.MarkPayoutFailed: f.mark_payout_failed,
    c.BeginClosingDay: f.begin_closing_day,
    c.CloseDay: f.close_day,
    c.ImportBill: f.import_bill,
    c.AcknowledgeBreak: f.acknowledge_break,
    c.RecordPayee: f.record_payee,
    c.PublishTaxTable: f.publish_tax_table,
    c.CloseQuarter: f.close_quarter,
}




def key_lookups(caller: c.Caller, command: c.Command) -> list[Key]:
    """The idempotency keys a command looks up: its own, and a close's second step's."""
    own = (caller.platform_id, caller.principal, command.idempotency_key)
    if isinstance(command, c.BeginClosingDay) and command.close_key:
        return [own, (caller.platform_id, caller.principal,
                      command.second_step().idempotency_key)]
    return [own]


def prefetch_ids(caller: c.Caller, command: c.Command) -> list[UUID]:
    """The aggregates a command looks up first, so a batch can load them in one query."""
    platform = caller.platform_id
    # A key recorded by the older code is an event in the log (idempotency.py).
    ids = [IdempotencyRecord.create_id(*key) for key in key_lookups(caller, command)]
    order_id = getattr(command, "order_id", "")
    if order_id:
        ids += order_ids(platform, caller.principal, order_id)
    for key in getattr(command, "orders", ()):
        ids += order_ids(platform, key.storefront_id, key.order_id)
    for field in ("reseller_id", "sponsor_id", "new_sponsor_id"):
        value = getattr(command, field, "")
        if value:
            ids.append(Reseller.create_id(platform, value))
    customer_id = getattr(command, "customer_id", "")
    if customer_id:
        ids.append(CustomerBinding.create_id(platform, customer_id))
    if isinstance(command, c.PayOrder | c.ImportOrder | c.RefundOrder | c.RunSettlement
                  | c.RequestPayout | c.PublishPlan):
        ids += [PlanBook.create_id(platform), PeriodBook.create_id(platform)]
    if isinstance(command, c.BeginClosingDay | c.CloseDay):
        ids.append(PeriodBook.create_id(platform))
    if isinstance(command, c.RequestPayout | c.RecordPayee):
        ids.append(Payee.create_id(platform, command.account))
    if isinstance(command, c.RequestPayout | c.PublishTaxTable):
        ids.append(TaxBook.create_id(platform))
    payout_id = getattr(command, "payout_id", "")
    if payout_id:
        ids.append(Payout.create_id(platform, payout_id))
    return ids
