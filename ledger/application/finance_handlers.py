"""Finance's commands, one function each: settlement, payouts and the tax withheld on them,
closing days and quarters, the payment rail's bills and their breaks, payees and tax
tables. Like handlers.py: load, let the domain decide everything, then record the result;
never save.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID
from zoneinfo import ZoneInfo

from ledger.application import commands as c
from ledger.application.context import (
    Context,
    check_open,
    find_or_open,
    find_order,
    move_wallets,
    own_payout,
    periods,
    plan_book,
    ref,
    reseller,
    tax_book,
    wallet,
)
from ledger.application.idempotency import (
    BILL,
    BREAKS,
    PAYEE,
    PAYOUT,
    PERIOD,
    QUARTER,
    SETTLEMENT,
    TAX_TABLE,
    ResultRef,
    check_same_request,
)
from ledger.domain.decisions import Event, create
from ledger.domain.order import OrderKey
from ledger.domain.order_decisions import Settle, decide_settle, settled_postings
from ledger.domain.payee import Payee, RecordPayee, decide_record_payee, withholds_tax
from ledger.domain.payout import (
    Approve,
    MarkFailed,
    MarkPaid,
    Payout,
    Reject,
    check_payout_permission,
    decide_approve,
    decide_mark_failed,
    decide_mark_paid,
    decide_reject,
    payout_number,
)
from ledger.domain.periods import BeginClosing, Close, decide_begin_closing, decide_close
from ledger.domain.quarters import CloseQuarter, QuarterBook, decide_close_quarter
from ledger.domain.rail_bills import Acknowledge, BreakBook, RailBill, decide_acknowledge
from ledger.domain.settlement import SettlementRun
from ledger.domain.tax_table import PublishTable, TablePublished, TaxTable, decide_publish_table
from ledger.domain.wallet import Release, Reserve, check_payable, decide_release, decide_reserve
from ledger.domain.withholding import (
    ReleaseTax,
    TaxWithheld,
    TaxYear,
    Withhold,
    decide_release_tax,
    decide_withhold,
)

MAX_SETTLEMENT_BATCH = 500  # orders one settlement command may settle


def known_reseller(ctx: Context, account: str) -> None:
    """A reseller's account names a reseller of the platform (NOT_FOUND otherwise)."""
    kind, _, owner = account.partition(":")
    if kind == "reseller":
        reseller(ctx.uow, ctx.caller.platform_id, owner)


def run_settlement(ctx: Context, cmd: c.RunSettlement) -> ResultRef:
    """Settles each candidate that is due; one not due (yet) is left as it is. Running it
    twice moves nothing twice: a settled order is never settled again."""
    check_open(ctx)
    settled: dict[UUID, OrderKey] = {}  # an order named twice is settled once
    for key in cmd.orders[:MAX_SETTLEMENT_BATCH]:
        order = find_order(ctx.uow, ctx.caller.platform_id, key.storefront_id, key.order_id)
        if order is None or order.id in settled or not order.is_due(ctx.now):
            continue
        decided = decide_settle(order, Settle(ctx.now))
        ctx.uow.record(order, decided)
        move_wallets(ctx, settled_postings(decided), f"order:{order.name}")
        settled[order.id] = order.key
    run = SettlementRun(ctx.caller.platform_id, cmd.idempotency_key, ctx.now,
                        tuple(settled.values()))
    ctx.uow.add(run)
    return ref(ctx, SETTLEMENT, run, settled_count=len(settled))


def request_payout(ctx: Context, cmd: c.RequestPayout) -> ResultRef:
    """Takes the amount out of available at once; a storefront may ask for its platform's
    resellers only, finance for resellers and suppliers."""
    check_payout_permission(ctx.caller.role, cmd.account)
    known_reseller(ctx, cmd.account)
    check_open(ctx)
    minimum = plan_book(ctx.uow, ctx.caller.platform_id).in_force_at(ctx.now).min_payout
    payout_id = payout_number(ctx.caller.platform_id, ctx.caller.principal, cmd.idempotency_key)
    paying = wallet(ctx, cmd.account, cmd.currency)
    reserved = decide_reserve(paying, Reserve(payout_id, cmd.amount, minimum))
    withheld = withhold_tax(ctx, cmd.account, cmd.currency, payout_id, cmd.amount)
    ctx.uow.record(paying, reserved)
    payout = Payout(ctx.caller.platform_id, payout_id, cmd.account, cmd.currency, cmd.amount,
                    ctx.caller.principal, ctx.now,
                    Payout.request_postings(cmd.account, cmd.currency, cmd.amount),
                    tax=withheld.tax if withheld else 0,
                    tax_year=local_year(ctx) if withheld else 0)
    ctx.uow.add(payout)
    return ref(ctx, PAYOUT, payout)


def approve_payout(ctx: Context, cmd: c.ApprovePayout) -> ResultRef:
    payout = own_payout(ctx, cmd.payout_id)
    decided = decide_approve(payout, Approve(ctx.caller.principal, ctx.now))
    if decided:
        check_payable(wallet(ctx, payout.account, payout.currency))
    ctx.uow.record(payout, decided)
    return ref(ctx, PAYOUT, payout)


def end_payout(ctx: Context, payout_id: str,
               decide: Callable[[Payout], list[Event]], *, paid: bool) -> ResultRef:
    """A payout ends (rejected, paid or failed): its wallet lets go of the amount in flight,
    for good when paid, back to available otherwise. A repeated step changes nothing."""
    payout = own_payout(ctx, payout_id)
    check_open(ctx)
    decided = decide(payout)
    if decided:
        paying = wallet(ctx, payout.account, payout.currency)
        released = decide_release(paying, Release(payout.payout_id, payout.amount, paid,
                                                  ctx.now))
        if not paid:
            release_tax(ctx, payout)
        ctx.uow.record(payout, decided)
        ctx.uow.record(paying, released)
    return ref(ctx, PAYOUT, payout)


def reject_payout(ctx: Context, cmd: c.RejectPayout) -> ResultRef:
    return end_payout(ctx, cmd.payout_id,
                      lambda p: decide_reject(p, Reject(cmd.reason, ctx.now)), paid=False)


def mark_payout_paid(ctx: Context, cmd: c.MarkPayoutPaid) -> ResultRef:
    return end_payout(ctx, cmd.payout_id,
                      lambda p: decide_mark_paid(p, MarkPaid(cmd.reference, ctx.now)),
                      paid=True)


def mark_payout_failed(ctx: Context, cmd: c.MarkPayoutFailed) -> ResultRef:
    return end_payout(ctx, cmd.payout_id,
                      lambda p: decide_mark_failed(p, MarkFailed(cmd.reason, ctx.now)),
                      paid=False)


def begin_closing_day(ctx: Context, cmd: c.BeginClosingDay) -> ResultRef:
    """Shuts the day, once the close's own key is known to be free for it (see
    BeginClosingDay). A close that key already finished (recorded before closes had a first
    step) leaves the book as it is: its second step replays."""
    book = periods(ctx)
    if cmd.close_key:
        close = cmd.second_step()
        assert ctx.keys is not None
        earlier = ctx.keys.find((ctx.caller.platform_id, ctx.caller.principal,
                                 close.idempotency_key))
        if earlier is not None:
            check_same_request(close.idempotency_key, earlier.fingerprint, close.fingerprint())
            return ref(ctx, PERIOD, book)
    ctx.uow.record(book, decide_begin_closing(book, BeginClosing(cmd.day, ctx.now)))
    return ref(ctx, PERIOD, book)


def close_day(ctx: Context, cmd: c.CloseDay) -> ResultRef:
    """Records the statement; a day another server closed meanwhile answers with the
    statement it was closed with (the same one: see ledger/domain/periods.py)."""
    assert cmd.statement is not None and cmd.statement.day == cmd.day, "statement first"
    book = periods(ctx)
    ctx.uow.record(book, decide_close(book, Close(cmd.statement, ctx.now)))
    return ref(ctx, PERIOD, book)


def import_bill(ctx: Context, cmd: c.ImportBill) -> ResultRef:
    """A bill seen before (the same bytes) is not recorded again: the answer names the
    import that stands."""
    platform = ctx.caller.platform_id
    known = ctx.uow.find(RailBill, RailBill.create_id(platform, cmd.digest))
    if known is not None:
        return ref(ctx, BILL, known, already_imported=True)
    bill = RailBill(platform, cmd.digest, cmd.day, cmd.kind, cmd.fmt, cmd.lines,
                    ctx.caller.principal, ctx.now)
    ctx.uow.add(bill)
    return ref(ctx, BILL, bill)


def acknowledge_break(ctx: Context, cmd: c.AcknowledgeBreak) -> ResultRef:
    """The API found the break open before sending this; acknowledging it again is a
    no-op."""
    platform = ctx.caller.platform_id
    book = ctx.uow.find(BreakBook, BreakBook.create_id(platform, cmd.day))
    if book is None:
        book = BreakBook(platform, cmd.day)
        ctx.uow.add(book)
    ctx.uow.record(book, decide_acknowledge(book, Acknowledge(
        cmd.break_id, cmd.reason, ctx.caller.principal, ctx.now)))
    return ref(ctx, BREAKS, book)
# --- payees and tax --------------------------------------------------------------------------


def record_payee(ctx: Context, cmd: c.RecordPayee) -> ResultRef:
    platform = ctx.caller.platform_id
    known_reseller(ctx, cmd.account)
    payee = ctx.uow.find(Payee, Payee.create_id(platform, cmd.account))
    decided = decide_record_payee(payee, RecordPayee(
        platform, cmd.account, cmd.kind, cmd.tax_id, cmd.identity, ctx.caller.principal,
        ctx.now))
    if payee is None:
        payee = create(Payee, *decided)
        ctx.uow.add(payee)
    else:
        ctx.uow.record(payee, decided)
    return ref(ctx, PAYEE, payee)


def publish_tax_table(ctx: Context, cmd: c.PublishTaxTable) -> ResultRef:
    book = tax_book(ctx.uow, ctx.caller.platform_id)
    [published] = decide_publish_table(book, PublishTable(
        TaxTable(0, cmd.effective_from or ctx.now, cmd.brackets, cmd.income_ratio_bps,
                 cmd.monthly_deduction, cmd.currency), ctx.now))
    assert isinstance(published, TablePublished)
    ctx.uow.record(book, [published])
    return ref(ctx, TAX_TABLE, book, published_version=published.table.version)


def withhold_tax(ctx: Context, account: str, currency: str, payout_id: str,
                 gross: int) -> TaxWithheld | None:
    """The tax on a payout to an individual, by the cumulative method over the payee's year
    (None for a business: paid gross). The year's figures are one aggregate per payee and
    year, so payouts of one payee are computed one after another, never from the same
    figures (a concurrent one on another server meets a conflict and runs again)."""
    platform = ctx.caller.platform_id
    if not withholds_tax(account, ctx.uow.find(Payee, Payee.create_id(platform, account))):
        return None
    table = tax_book(ctx.uow, platform).in_force_at(ctx.now)
    table.check_withholds_in(currency)
    local = ctx.now.astimezone(ZoneInfo(ctx.timezone))
    year: TaxYear = find_or_open(ctx.uow, TaxYear, platform, account, local.year)
    [withheld] = decide_withhold(year, Withhold(table, payout_id, local.month, gross, ctx.now))
    assert isinstance(withheld, TaxWithheld)
    ctx.uow.record(year, [withheld])
    return withheld


def local_year(ctx: Context) -> int:
    return ctx.now.astimezone(ZoneInfo(ctx.timezone)).year


def release_tax(ctx: Context, payout: Payout) -> None:
    """A payout that failed or was rejected withholds nothing: it leaves the year."""
    if payout.tax_year:
        year = ctx.uow.get(TaxYear, TaxYear.create_id(ctx.caller.platform_id, payout.account,
                                                       payout.tax_year),
                           f"tax year {payout.tax_year} of {payout.account}")
        ctx.uow.record(year, decide_release_tax(year, ReleaseTax(payout.payout_id, ctx.now)))


def close_quarter(ctx: Context, cmd: c.CloseQuarter) -> ResultRef:
    """Records the report; a quarter another server closed meanwhile answers with the
    report it was closed with."""
    assert cmd.report is not None and cmd.report.quarter == cmd.quarter, "report first"
    book: QuarterBook = find_or_open(ctx.uow, QuarterBook, ctx.caller.platform_id)
    ctx.uow.record(book, decide_close_quarter(book, CloseQuarter(cmd.report, ctx.now)))
    return ref(ctx, QUARTER, book)
