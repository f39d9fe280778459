"""One function per command: load what it needs, let the domain decide, record the result.

Handlers run inside a batch (see group_commit.py) on a UnitOfWork; they never save. A
handler decides everything before it records anything (ledger/domain/decisions.py), so a
refused command has nothing to undo. Each
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
    is_self_purchase,
    order_binds_customer,
    sponsor_of_new_reseller,
)
from ledger.domain.decisions import create
from ledger.domain.errors import InvalidInput
from ledger.domain.order import Order
from ledger.domain.order_decisions import (
    Cancel,
    CloseCase,
    Complete,
    OpenCase,
    Pay,
    Place,
    Refund,
    Refunded,
    decide_cancel,
    decide_close_case,
    decide_complete,
    decide_open_case,
    decide_pay,
    decide_place,
    decide_refund,
)
from ledger.domain.payee import Payee
from ledger.domain.payout import Payout
from ledger.domain.periods import PeriodBook
from ledger.domain.plan import CommissionPlan
from ledger.domain.plan_book import PlanBook, PlanPublished, Publish, decide_publish
from ledger.domain.refunds import RefundLine
from ledger.domain.split import LineItem
from ledger.domain.tax_table import TaxBook
from ledger.domain.team import CustomerBinding, Reseller
from ledger.domain.team_decisions import (
    Bind,
    Bound,
    Enrol,
    Move,
    Rebind,
    SetRank,
    SetTeamTarget,
    decide_bind,
    decide_enrol,
    decide_move,
    decide_rebind,
    decide_set_rank,
    decide_set_team_target,
)

# --- storefront commands -------------------------------------------------------------------


def place_order(ctx: Context, cmd: c.PlaceOrder) -> ResultRef:
    """Attributes the order: the named reseller, else the customer's bound reseller, else none.

    A customer's first attributed order binds them to its reseller (锁粉) when unbound.
    """
    platform = ctx.caller.platform_id
    existing = find_order(ctx.uow, platform, ctx.caller.principal, cmd.order_id)
    bound = bound_reseller_id(ctx.uow, platform, cmd.customer_id)
    lines = tuple(
        LineItem(i, n.sku, n.category, n.quantity, n.unit_sale_price, n.unit_supply_price,
                 n.supplier_id)
        for i, n in enumerate(cmd.lines, start=1)
    )
    placed = decide_place(existing, Place(
        platform, cmd.order_id, ctx.caller.principal, cmd.customer_id,
        attributed_seller(cmd.reseller_id, bound), cmd.currency, lines, ctx.now))
    if cmd.reseller_id:
        reseller(ctx.uow, platform, cmd.reseller_id)
    if order_binds_customer(cmd.reseller_id, bound):
        ctx.uow.add(create(CustomerBinding,
                           Bound(platform, cmd.customer_id, cmd.reseller_id, ctx.now)))
    order = create(Order, *placed)
    ctx.uow.add(order)
    return ref(ctx, ORDER, order)


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
    check_open(ctx)
    ctx.uow.record(order, decide_pay(order, Pay(
        cmd.payment_id, cmd.amount, plan, tuple(chain),
        is_self_purchase(seller.customer_id if seller else "", order.customer_id), ctx.now,
        backdated, seller.enrolled_at if seller else None)))
    return ref(ctx, ORDER, order)


def complete_order(ctx: Context, cmd: c.CompleteOrder) -> ResultRef:
    order = own_order(ctx.uow, ctx.caller, cmd.order_id)
    ctx.uow.record(order, decide_complete(order, Complete(ctx.now)))
    return ref(ctx, ORDER, order)


def import_order(ctx: Context, cmd: c.ImportOrder) -> ResultRef:
    """The storefront's three writes (place, pay in full, complete) as one command, so a
    bulk import pays for one idempotency key and one lookup per order, not three. Each step
    decides on the new order as the step before left it (it is this command's own).

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
    return ref(ctx, ORDER, order)


def cancel_order(ctx: Context, cmd: c.CancelOrder) -> ResultRef:
    order = own_order(ctx.uow, ctx.caller, cmd.order_id)
    ctx.uow.record(order, decide_cancel(order, Cancel(cmd.reason, ctx.now)))
    return ref(ctx, ORDER, order)


def refund_order(ctx: Context, cmd: c.RefundOrder) -> ResultRef:
    """A refund after settlement takes the money back from available balances (clawback),
    which may leave a debt."""
    order = own_order(ctx.uow, ctx.caller, cmd.order_id)
    check_open(ctx)
    decided = decide_refund(order, Refund(
        cmd.refund_id, tuple(RefundLine(line.line_no, line.amount) for line in cmd.lines),
        cmd.reason, ctx.now))
    ctx.uow.record(order, decided)
    for refunded in decided:
        assert isinstance(refunded, Refunded)
        move_wallets(ctx, refunded.refund.postings, f"refund:{order.name}/{cmd.refund_id}")
    return ref(ctx, ORDER, order, refund_id=cmd.refund_id)


def open_after_sale(ctx: Context, cmd: c.OpenAfterSale) -> ResultRef:
    order = own_order(ctx.uow, ctx.caller, cmd.order_id)
    ctx.uow.record(order, decide_open_case(order, OpenCase(cmd.case_id, cmd.line_no,
                                                           cmd.reason)))
    return ref(ctx, ORDER, order)


def close_after_sale(ctx: Context, cmd: c.CloseAfterSale) -> ResultRef:
    order = own_order(ctx.uow, ctx.caller, cmd.order_id)
    ctx.uow.record(order, decide_close_case(order, CloseCase(cmd.case_id, cmd.resolution)))
    return ref(ctx, ORDER, order)


def enroll_reseller(ctx: Context, cmd: c.EnrollReseller) -> ResultRef:
    """A customer becoming a reseller keeps the reseller they were bound to as sponsor,
    unless the request names another sponsor or asks for none."""
    platform = ctx.caller.platform_id
    existing = ctx.uow.find(Reseller, Reseller.create_id(platform, cmd.reseller_id))
    sponsor_id = sponsor_of_new_reseller(
        cmd.sponsor_id, bound_reseller_id(ctx.uow, platform, cmd.customer_id),
        without_sponsor=cmd.without_sponsor)
    sponsor = (ctx.uow.find(Reseller, Reseller.create_id(platform, sponsor_id))
               if sponsor_id else None)
    new = create(Reseller, *decide_enrol(existing, sponsor, Enrol(
        platform, cmd.reseller_id, sponsor_id, cmd.customer_id, cmd.enrolled_at, ctx.now,
        cmd.rank if isinstance(cmd, c.ImportReseller) else "")))
    ctx.uow.add(new)
    return ref(ctx, RESELLER, new)


def bind_customer(ctx: Context, cmd: c.BindCustomer) -> ResultRef:
    """The first binding stands: binding again to the same reseller changes nothing, to
    another is refused."""
    platform = ctx.caller.platform_id
    reseller(ctx.uow, platform, cmd.reseller_id)
    bound = binding(ctx.uow, platform, cmd.customer_id)
    decided = decide_bind(bound, Bind(platform, cmd.customer_id, cmd.reseller_id, ctx.now))
    if decided:
        bound = create(CustomerBinding, *decided)
        ctx.uow.add(bound)
    assert bound is not None
    return ref(ctx, BINDING, bound)


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
    [published] = decide_publish(book, Publish(plan, ctx.now))
    assert isinstance(published, PlanPublished)
    ctx.uow.record(book, [published])
    return ref(ctx, PLAN, book, published_version=published.plan.version)


def move_reseller(ctx: Context, cmd: c.MoveReseller) -> ResultRef:
    """Only orders paid after the move see the new chain; history is never rewritten."""
    platform = ctx.caller.platform_id
    moving = reseller(ctx.uow, platform, cmd.reseller_id)
    if cmd.new_sponsor_id:
        reseller(ctx.uow, platform, cmd.new_sponsor_id)
    ctx.uow.record(moving, decide_move(
        moving, Move(cmd.new_sponsor_id, cmd.reason, ctx.now),
        lambda rid: reseller(ctx.uow, platform, rid).sponsor_id))
    return ref(ctx, RESELLER, moving)


def set_rank(ctx: Context, cmd: c.SetRank) -> ResultRef:
    ranked = reseller(ctx.uow, ctx.caller.platform_id, cmd.reseller_id)
    ctx.uow.record(ranked, decide_set_rank(ranked, SetRank(cmd.rank, ctx.now)))
    return ref(ctx, RESELLER, ranked)


def set_team_target(ctx: Context, cmd: c.SetTeamTarget) -> ResultRef:
    leader = reseller(ctx.uow, ctx.caller.platform_id, cmd.reseller_id)
    ctx.uow.record(leader, decide_set_team_target(
        leader, SetTeamTarget(cmd.month, cmd.currency, cmd.amount, ctx.now)))
    return ref(ctx, RESELLER, leader)


def rebind_customer(ctx: Context, cmd: c.RebindCustomer) -> ResultRef:
    reseller(ctx.uow, ctx.caller.platform_id, cmd.reseller_id)
    bound = binding(ctx.uow, ctx.caller.platform_id, cmd.customer_id)
    decided = decide_rebind(bound, Rebind(cmd.customer_id, cmd.reseller_id, cmd.reason,
                                          ctx.now))
    assert bound is not None  # decide_rebind refuses a customer bound to nobody
    ctx.uow.record(bound, decided)
    return ref(ctx, BINDING, bound)


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
