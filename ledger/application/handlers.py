"""One function per command: load what it needs, let the domain decide, stage the result.

Handlers run inside a batch (see group_commit.py) on a UnitOfWork; they never save. Each
returns a ResultRef naming the aggregate and version that answer the request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from ledger.application import commands as c
from ledger.application.idempotency import IdempotencyRecord, ResultRef
from ledger.application.unit_of_work import UnitOfWork
from ledger.domain.errors import (
    AccessDenied,
    AlreadyExists,
    InvalidInput,
    NotFound,
    RuleViolation,
)
from ledger.domain.money import AVAILABLE, Posting
from ledger.domain.order import Order, OrderKey
from ledger.domain.payee import (
    IDENTITY_MISSING,
    Payee,
    is_individual_by_default,
    missing_identity,
)
from ledger.domain.payout import Payout, payout_number
from ledger.domain.periods import PeriodBook, local_day
from ledger.domain.plan import CommissionPlan
from ledger.domain.plan_book import PlanBook
from ledger.domain.quarters import QuarterBook
from ledger.domain.rail_bills import BreakBook, RailBill
from ledger.domain.refunds import RefundLine
from ledger.domain.settlement import SettlementRun
from ledger.domain.split import LineItem, UplineMember
from ledger.domain.tax_table import TaxBook, TaxTable
from ledger.domain.team import CustomerBinding, Reseller, check_no_cycle, enroll
from ledger.domain.wallet import Wallet
from ledger.domain.withholding import TaxYear, Withholding

ORDER = "order"
RESELLER = "reseller"
BINDING = "binding"
PLAN = "plan"
SETTLEMENT = "settlement"
PAYOUT = "payout"
PERIOD = "period"
BILL = "bill"
BREAKS = "breaks"
DUPLICATE = "duplicate"
PAYEE = "payee"
TAX_TABLE = "tax-table"
QUARTER = "quarter"
STOREFRONT_ROLE = "storefront"
WALLET_KINDS = ("reseller", "supplier")
MAX_SETTLEMENT_BATCH = 500  # orders one settlement command may settle


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

    def __post_init__(self) -> None:
        if self.clock is None:
            object.__setattr__(self, "clock", self.now)


def ref(kind: str, aggregate: Any, detail: str = "") -> ResultRef:
    return ResultRef(kind, aggregate.id, aggregate.version, detail)


# --- loading -------------------------------------------------------------------------------


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
    """Keeps the withdrawable balances of resellers and suppliers in step with what moved
    in or out of their available bucket."""
    for p in postings:
        if p.bucket == AVAILABLE and p.account.split(":", 1)[0] in WALLET_KINDS:
            target = wallet(ctx, p.account, p.currency)
            if p.amount > 0:
                target.credit(p.amount, source)
            else:
                target.debit(-p.amount, source)


def own_payout(ctx: Context, payout_id: str) -> Payout:
    return ctx.uow.get(Payout, Payout.create_id(ctx.caller.platform_id, payout_id),
                       f"payout {payout_id}")


# --- storefront commands -------------------------------------------------------------------


def place_order(ctx: Context, cmd: c.PlaceOrder) -> ResultRef:
    """Attributes the order: the named reseller, else the customer's bound reseller, else none.

    A customer's first attributed order binds them to its reseller (锁粉) when unbound.
    """
    platform = ctx.caller.platform_id
    if find_order(ctx.uow, platform, ctx.caller.principal, cmd.order_id) is not None:
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
        self_purchase=bool(seller_customer) and seller_customer == order.customer_id,
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
    bulk import pays for one idempotency record and one lookup per order, not three.

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
    if not sponsor_id and cmd.customer_id and not cmd.without_sponsor:
        bound = binding(ctx.uow, platform, cmd.customer_id)
        sponsor_id = bound.reseller_id if bound is not None else ""
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


# --- settlement and payouts ----------------------------------------------------------------


def run_settlement(ctx: Context, cmd: c.RunSettlement) -> ResultRef:
    """Settles each candidate that is due; one not due (yet) is left as it is. Running it
    twice moves nothing twice: a settled order is never settled again."""
    check_open(ctx)
    settled: list[OrderKey] = []
    for key in cmd.orders[:MAX_SETTLEMENT_BATCH]:
        order = find_order(ctx.uow, ctx.caller.platform_id, key.storefront_id, key.order_id)
        if order is None or not order.is_due(ctx.now):
            continue
        postings = order.settle(at=ctx.now)
        move_wallets(ctx, postings, f"order:{order.name}")
        settled.append(order.key)
    run = SettlementRun(ctx.caller.platform_id, cmd.idempotency_key, ctx.now, tuple(settled))
    ctx.uow.add(run)
    return ref(SETTLEMENT, run, str(len(settled)))


def request_payout(ctx: Context, cmd: c.RequestPayout) -> ResultRef:
    """Takes the amount out of available at once; a storefront may ask for its platform's
    resellers only, finance for resellers and suppliers."""
    kind, _, owner = cmd.account.partition(":")
    if kind == "reseller":
        reseller(ctx.uow, ctx.caller.platform_id, owner)
    elif ctx.caller.role == STOREFRONT_ROLE:
        raise AccessDenied("a storefront may request payouts for resellers only")
    check_open(ctx)
    minimum = plan_book(ctx.uow, ctx.caller.platform_id).in_force_at(ctx.now).min_payout
    payout_id = payout_number(ctx.caller.platform_id, ctx.caller.principal, cmd.idempotency_key)
    wallet(ctx, cmd.account, cmd.currency).reserve(payout_id=payout_id, amount=cmd.amount,
                                                   minimum=minimum)
    withheld = withhold_tax(ctx, cmd.account, cmd.currency, payout_id, cmd.amount)
    payout = Payout(ctx.caller.platform_id, payout_id, cmd.account, cmd.currency, cmd.amount,
                    ctx.caller.principal, ctx.now,
                    Payout.request_postings(cmd.account, cmd.currency, cmd.amount),
                    tax=withheld.tax if withheld else 0,
                    tax_year=local_year(ctx) if withheld else 0)
    ctx.uow.add(payout)
    return ref(PAYOUT, payout)


def approve_payout(ctx: Context, cmd: c.ApprovePayout) -> ResultRef:
    payout = own_payout(ctx, cmd.payout_id)
    if payout.approve(by=ctx.caller.principal, at=ctx.now):
        # Refused, the command is rolled back whole, approval included.
        wallet(ctx, payout.account, payout.currency).check_payable()
    return ref(PAYOUT, payout)


def end_payout(ctx: Context, payout_id: str, step: Callable[[Payout], bool], *,
               paid: bool) -> ResultRef:
    """A payout ends (rejected, paid or failed): its wallet lets go of the amount in flight,
    for good when paid, back to available otherwise. A repeated step changes nothing."""
    payout = own_payout(ctx, payout_id)
    check_open(ctx)
    if step(payout):
        wallet(ctx, payout.account, payout.currency).release(
            payout_id=payout.payout_id, amount=payout.amount, paid=paid, at=ctx.now)
        if not paid:
            release_tax(ctx, payout)
    return ref(PAYOUT, payout)


def reject_payout(ctx: Context, cmd: c.RejectPayout) -> ResultRef:
    return end_payout(ctx, cmd.payout_id,
                      lambda p: p.reject(reason=cmd.reason, at=ctx.now), paid=False)


def mark_payout_paid(ctx: Context, cmd: c.MarkPayoutPaid) -> ResultRef:
    return end_payout(ctx, cmd.payout_id,
                      lambda p: p.mark_paid(reference=cmd.reference, at=ctx.now), paid=True)


def mark_payout_failed(ctx: Context, cmd: c.MarkPayoutFailed) -> ResultRef:
    return end_payout(ctx, cmd.payout_id,
                      lambda p: p.mark_failed(reason=cmd.reason, at=ctx.now), paid=False)


def begin_closing_day(ctx: Context, cmd: c.BeginClosingDay) -> ResultRef:
    """Shuts the day, once the close's own key is known to be free for it (see
    BeginClosingDay). A close that key already finished (recorded before closes had a first
    step) leaves the book as it is: its second step replays."""
    book = periods(ctx)
    if cmd.close_key:
        close = cmd.second_step()
        earlier = ctx.uow.find(IdempotencyRecord, IdempotencyRecord.create_id(
            ctx.caller.platform_id, ctx.caller.principal, close.idempotency_key))
        if earlier is not None:
            earlier.check_same_request(close.fingerprint())
            return ref(PERIOD, book, cmd.day)
    book.begin_closing(cmd.day, now=ctx.now)
    return ref(PERIOD, book, cmd.day)


def close_day(ctx: Context, cmd: c.CloseDay) -> ResultRef:
    """Records the statement; a day another server closed meanwhile answers with the
    statement it was closed with (the same one: see ledger/domain/periods.py)."""
    assert cmd.statement is not None and cmd.statement.day == cmd.day, "statement first"
    book = periods(ctx)
    book.close(cmd.statement, now=ctx.now)
    return ref(PERIOD, book, cmd.day)


def import_bill(ctx: Context, cmd: c.ImportBill) -> ResultRef:
    """A bill seen before (the same bytes) is not recorded again: the answer names the
    import that stands."""
    platform = ctx.caller.platform_id
    known = ctx.uow.find(RailBill, RailBill.create_id(platform, cmd.digest))
    if known is not None:
        return ref(BILL, known, DUPLICATE)
    bill = RailBill(platform, cmd.digest, cmd.day, cmd.kind, cmd.fmt, cmd.lines,
                    ctx.caller.principal, ctx.now)
    ctx.uow.add(bill)
    return ref(BILL, bill)


def acknowledge_break(ctx: Context, cmd: c.AcknowledgeBreak) -> ResultRef:
    """The API found the break open before sending this; acknowledging it again is a
    no-op."""
    platform = ctx.caller.platform_id
    book = ctx.uow.find(BreakBook, BreakBook.create_id(platform, cmd.day))
    if book is None:
        book = BreakBook(platform, cmd.day)
        ctx.uow.add(book)
    book.acknowledge(break_id=cmd.break_id, reason=cmd.reason, by=ctx.caller.principal,
                     at=ctx.now)
    return ref(BREAKS, book, cmd.break_id)
# --- payees and tax --------------------------------------------------------------------------


def tax_book(uow: UnitOfWork, platform_id: str) -> TaxBook:
    """The platform's tax tables, opened with the default table on first use."""
    book: TaxBook = find_or_open(uow, TaxBook, platform_id)
    return book


def record_payee(ctx: Context, cmd: c.RecordPayee) -> ResultRef:
    platform = ctx.caller.platform_id
    kind, _, owner = cmd.account.partition(":")
    if kind == "reseller":
        reseller(ctx.uow, platform, owner)
    payee = ctx.uow.find(Payee, Payee.create_id(platform, cmd.account))
    if payee is None:
        payee = Payee(platform, cmd.account, cmd.kind, cmd.tax_id, cmd.identity,
                      ctx.caller.principal, ctx.now)
        ctx.uow.add(payee)
    else:
        payee.change(kind=cmd.kind, tax_id=cmd.tax_id, identity=cmd.identity,
                     by=ctx.caller.principal, at=ctx.now)
    return ref(PAYEE, payee)


def publish_tax_table(ctx: Context, cmd: c.PublishTaxTable) -> ResultRef:
    book = tax_book(ctx.uow, ctx.caller.platform_id)
    published = book.publish(
        TaxTable(0, cmd.effective_from or ctx.now, cmd.brackets, cmd.income_ratio_bps,
                 cmd.monthly_deduction, cmd.currency), now=ctx.now)
    return ref(TAX_TABLE, book, str(published.version))


def withhold_tax(ctx: Context, account: str, currency: str, payout_id: str,
                 gross: int) -> Withholding | None:
    """The tax on a payout to an individual, by the cumulative method over the payee's year
    (None for a business: paid gross). The year's figures are one aggregate per payee and
    year, so payouts of one payee are computed one after another, never from the same
    figures (a concurrent one on another server meets a conflict and runs again)."""
    platform = ctx.caller.platform_id
    payee = ctx.uow.find(Payee, Payee.create_id(platform, account))
    if payee is None:
        if not is_individual_by_default(account):
            return None
        raise RuleViolation(missing_identity(account), reason=IDENTITY_MISSING)
    if not payee.is_individual:
        return None
    payee.check_identified()
    table = tax_book(ctx.uow, platform).in_force_at(ctx.now)
    if currency != table.currency:
        raise RuleViolation(
            f"income tax is withheld in {table.currency}; a payout to an individual in "
            f"{currency} cannot be withheld on", reason="WITHHOLDING_CURRENCY")
    local = ctx.now.astimezone(ZoneInfo(ctx.timezone))
    year: TaxYear = find_or_open(ctx.uow, TaxYear, platform, account, local.year)
    return year.withhold(table, payout_id=payout_id, month=local.month, gross=gross,
                         at=ctx.now)


def local_year(ctx: Context) -> int:
    return ctx.now.astimezone(ZoneInfo(ctx.timezone)).year


def release_tax(ctx: Context, payout: Payout) -> None:
    """A payout that failed or was rejected withholds nothing: it leaves the year."""
    if payout.tax_year:
        year = ctx.uow.get(TaxYear, TaxYear.create_id(ctx.caller.platform_id, payout.account,
                                                       payout.tax_year),
                           f"tax year {payout.tax_year} of {payout.account}")
        year.release(payout_id=payout.payout_id, at=ctx.now)


def close_quarter(ctx: Context, cmd: c.CloseQuarter) -> ResultRef:
    """Records the report; a quarter another server closed meanwhile answers with the
    report it was closed with."""
    assert cmd.report is not None and cmd.report.quarter == cmd.quarter, "report first"
    book: QuarterBook = find_or_open(ctx.uow, QuarterBook, ctx.caller.platform_id)
    book.close(cmd.report, now=ctx.now)
    return ref(QUARTER, book, cmd.quarter)


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
    c.RunSettlement: run_settlement,
    c.RequestPayout: request_payout,
    c.ApprovePayout: approve_payout,
    c.RejectPayout: reject_payout,
    c.MarkPayoutPaid: mark_payout_paid,
    c.MarkPayoutFailed: mark_payout_failed,
    c.BeginClosingDay: begin_closing_day,
    c.CloseDay: close_day,
    c.ImportBill: import_bill,
    c.AcknowledgeBreak: acknowledge_break,
    c.RecordPayee: record_payee,
    c.PublishTaxTable: publish_tax_table,
    c.CloseQuarter: close_quarter,
}


def order_ids(platform_id: str, storefront_id: str, order_id: str) -> tuple[UUID, UUID]:
    """Where ``find_order`` looks for an order."""
    return (Order.create_id(platform_id, storefront_id, order_id),
            Order.legacy_id(platform_id, order_id))


def prefetch_ids(caller: c.Caller, command: c.Command) -> list[UUID]:
    """The aggregates a command looks up first, so a batch can load them in one query."""
    platform = caller.platform_id
    ids = [IdempotencyRecord.create_id(platform, caller.principal, command.idempotency_key)]
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
