"""Translation between protobuf messages and the application's commands and aggregates."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from ledger.api import reconciliation as recon
from ledger.application import commands as c
from ledger.application.ledger_app import Outcome
from ledger.audit.signing import TreeHead
from ledger.domain import payout as payouts
from ledger.domain.errors import InvalidInput
from ledger.domain.money import Posting
from ledger.domain.order import CANCELLED, COMPLETED, PAID, PLACED, Order, OrderKey
from ledger.domain.periods import DayStatement, StatementLine
from ledger.domain.plan import CATEGORY, PRODUCT, RANK, CommissionPlan, RateOverride
from ledger.domain.refunds import RefundRecord
from ledger.domain.team import CustomerBinding, Reseller
from ledger.v1 import admin_pb2, audit_pb2, common_pb2, finance_pb2, storefront_pb2

STATUSES = {
    PLACED: common_pb2.ORDER_STATUS_PLACED,
    PAID: common_pb2.ORDER_STATUS_PAID,
    COMPLETED: common_pb2.ORDER_STATUS_COMPLETED,
    CANCELLED: common_pb2.ORDER_STATUS_CANCELLED,
}
SCOPES = {
    admin_pb2.OVERRIDE_SCOPE_PRODUCT: PRODUCT,
    admin_pb2.OVERRIDE_SCOPE_CATEGORY: CATEGORY,
    admin_pb2.OVERRIDE_SCOPE_RANK: RANK,
}
SCOPE_CODES = {v: k for k, v in SCOPES.items()}


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(at: datetime | None) -> Timestamp | None:
    """Timestamp.FromDatetime goes through a time tuple; every answer has several of these."""
    if at is None:
        return None
    delta = (at if at.tzinfo is not None else at.replace(tzinfo=UTC)) - EPOCH
    return Timestamp(seconds=delta.days * 86_400 + delta.seconds,
                     nanos=delta.microseconds * 1000)


def from_timestamp(ts: Timestamp, present: bool) -> datetime | None:
    """Never raises: a timestamp out of range was refused with the request (requests.py)."""
    return ts.ToDatetime(tzinfo=UTC) if present else None


def receipt(outcome: Outcome) -> common_pb2.WriteReceipt:
    return common_pb2.WriteReceipt(log_position=outcome.log_position, replayed=outcome.replayed)


def postings(items: tuple[Posting, ...]) -> list[common_pb2.Posting]:
    return [common_pb2.Posting(account=p.account, bucket=p.bucket, currency=p.currency,
                               amount=p.amount) for p in items]


def refund(record: RefundRecord) -> common_pb2.Refund:
    return common_pb2.Refund(
        refund_id=record.refund_id,
        amount=record.amount,
        lines=[common_pb2.RefundLine(line_no=x.line_no, amount=x.amount) for x in record.lines],
        postings=postings(record.postings),
        refunded_at=timestamp(record.refunded_at),
        reason=record.reason,
    )


def order(o: Order, view: int = common_pb2.ORDER_VIEW_FULL) -> common_pb2.Order:
    """The order as an answer carries it: ``ORDER_VIEW_BASIC`` leaves out the repeated parts,
    which are most of the cost of answering a write (a paid order holds every share)."""
    if view == common_pb2.ORDER_VIEW_BASIC:
        return common_pb2.Order(
            order_id=o.order_id, storefront_id=o.storefront_id, customer_id=o.customer_id,
            seller_id=o.seller_id, currency=o.currency, status=STATUSES[o.status],
            total=o.total, refunded=o.refunded, plan_version=o.plan_version,
            placed_at=timestamp(o.placed_at), paid_at=timestamp(o.paid_at),
            completed_at=timestamp(o.completed_at), cancelled_at=timestamp(o.cancelled_at),
            payment_id=o.payment_id,
        )
    return common_pb2.Order(
        order_id=o.order_id,
        storefront_id=o.storefront_id,
        customer_id=o.customer_id,
        seller_id=o.seller_id,
        currency=o.currency,
        status=STATUSES[o.status],
        lines=[
            common_pb2.OrderLine(
                line_no=x.line_no, sku=x.sku, category=x.category, quantity=x.quantity,
                unit_sale_price=x.unit_sale_price, unit_supply_price=x.unit_supply_price,
                supplier_id=x.supplier_id, amount=x.amount, refunded=o.refunded_by_line[x.line_no],
            )
            for x in o.lines
        ],
        total=o.total,
        refunded=o.refunded,
        plan_version=o.plan_version,
        upline_chain=list(o.upline_chain),
        shares=[
            common_pb2.Share(line_no=s.line_no, account=s.account, role=s.role, level=s.level,
                             rate_bps=s.rate_bps, amount=s.amount, reversed=o.reversed[i])
            for i, s in enumerate(o.shares)
        ],
        payment_postings=postings(o.payment_postings),
        refunds=[refund(r) for r in o.refunds.values()],
        after_sale_cases=[
            common_pb2.AfterSaleCase(case_id=k.case_id, line_no=k.line_no, reason=k.reason,
                                     open=k.open, resolution=k.resolution)
            for k in o.cases.values()
        ],
        placed_at=timestamp(o.placed_at),
        paid_at=timestamp(o.paid_at),
        completed_at=timestamp(o.completed_at),
        cancelled_at=timestamp(o.cancelled_at),
        payment_id=o.payment_id,
    )


def order_refs(keys: Sequence[OrderKey]) -> list[common_pb2.OrderRef]:
    return [common_pb2.OrderRef(storefront_id=k.storefront_id, order_id=k.order_id)
            for k in keys]


def reseller(r: Reseller) -> common_pb2.Reseller:
    return common_pb2.Reseller(reseller_id=r.reseller_id, sponsor_id=r.sponsor_id, rank=r.rank,
                               customer_id=r.customer_id, enrolled_at=timestamp(r.enrolled_at))


def binding(b: CustomerBinding) -> common_pb2.CustomerBinding:
    return common_pb2.CustomerBinding(customer_id=b.customer_id, reseller_id=b.reseller_id,
                                      bound_at=timestamp(b.bound_at))


def plan(p: CommissionPlan) -> admin_pb2.CommissionPlan:
    return admin_pb2.CommissionPlan(
        version=p.version,
        effective_from=timestamp(p.effective_from),
        level_rates_bps=list(p.level_rates_bps),
        overrides=[
            admin_pb2.RateOverride(scope=SCOPE_CODES[o.scope], key=o.key, level=o.level,
                                   rate_bps=o.rate_bps)
            for o in p.overrides
        ],
        freeze_days=p.freeze_days,
        min_payout=p.min_payout,
        exclude_self_purchase=p.exclude_self_purchase,
    )


# --- requests into commands ----------------------------------------------------------------


def new_lines(lines: object) -> tuple[c.NewLine, ...]:
    return tuple(
        c.NewLine(x.sku, x.category, x.quantity, x.unit_sale_price, x.unit_supply_price,
                  x.supplier_id)
        for x in lines  # type: ignore[attr-defined]
    )


def imported_order(o: storefront_pb2.ImportedOrder) -> c.ImportOrder:
    """An imported order as one command keyed by its order id, so a resent import writes
    nothing twice."""
    return c.ImportOrder(f"import:{o.order_id}", o.order_id, o.customer_id, o.reseller_id,
                         o.currency, new_lines(o.lines), o.payment_id, o.completed,
                         from_timestamp(o.placed_at, o.HasField("placed_at")),
                         from_timestamp(o.paid_at, o.HasField("paid_at")),
                         from_timestamp(o.completed_at, o.HasField("completed_at")))


def enroll_reseller(r: storefront_pb2.EnrollResellerRequest) -> c.EnrollReseller:
    return c.EnrollReseller(r.idempotency_key, r.reseller_id, r.sponsor_id, r.customer_id,
                            r.without_sponsor,
                            from_timestamp(r.enrolled_at, r.HasField("enrolled_at")))


def imported_reseller(m: storefront_pb2.ImportedReseller) -> c.ImportReseller:
    """An imported member as one command keyed by its reseller id, so a resent import
    writes nothing twice. An id too long (or too odd) to stand in a key is hashed there."""
    key = f"reseller:{m.reseller_id}"
    if len(key) > c.MAX_ID_LENGTH or not key.isprintable() or key != key.strip():
        key = f"reseller-sha256:{hashlib.sha256(m.reseller_id.encode()).hexdigest()}"
    return c.ImportReseller(key, m.reseller_id, m.sponsor_id, m.customer_id,
                            not m.sponsor_id,
                            from_timestamp(m.enrolled_at, m.HasField("enrolled_at")), m.rank)


def place_order(r: storefront_pb2.PlaceOrderRequest) -> c.PlaceOrder:
    violations = [
        (f"lines[{i}]", "line_no, amount and refunded are assigned by the ledger; leave them unset")
        for i, x in enumerate(r.lines)
        if x.line_no or x.amount or x.refunded
    ]
    if violations:
        raise InvalidInput(violations)
    return c.PlaceOrder(r.idempotency_key, r.order_id, r.customer_id, r.reseller_id,
                        r.currency, new_lines(r.lines))


def publish_plan(r: admin_pb2.PublishPlanRequest) -> c.PublishPlan:
    p = r.plan
    violations = [
        (f"plan.overrides[{i}].scope", "must be PRODUCT, CATEGORY or RANK")
        for i, o in enumerate(p.overrides)
        if o.scope not in SCOPES
    ]
    if violations:
        raise InvalidInput(violations)
    return c.PublishPlan(
        r.idempotency_key,
        from_timestamp(p.effective_from, p.HasField("effective_from")),
        tuple(p.level_rates_bps),
        tuple(RateOverride(SCOPES[o.scope], o.key, o.level, o.rate_bps) for o in p.overrides),
        p.freeze_days,
        p.min_payout,
        p.exclude_self_purchase,
    )


PAYOUT_STATUSES = {
    payouts.REQUESTED: finance_pb2.PAYOUT_STATUS_REQUESTED,
    payouts.APPROVED: finance_pb2.PAYOUT_STATUS_APPROVED,
    payouts.REJECTED: finance_pb2.PAYOUT_STATUS_REJECTED,
    payouts.PAID: finance_pb2.PAYOUT_STATUS_PAID,
    payouts.FAILED: finance_pb2.PAYOUT_STATUS_FAILED,
}


def payout(p: payouts.Payout) -> finance_pb2.Payout:
    return finance_pb2.Payout(
        payout_id=p.payout_id, account=p.account, currency=p.currency, amount=p.amount,
        tax=p.tax, net=p.net, status=PAYOUT_STATUSES[p.status], requested_by=p.requested_by,
        requested_at=timestamp(p.requested_at), updated_at=timestamp(p.updated_at),
        reference=p.reference, reason=p.reason,
    )


def statement_line(line: StatementLine) -> finance_pb2.StatementLine:
    return finance_pb2.StatementLine(
        account=line.account, currency=line.currency, opening=line.opening,
        movements=[finance_pb2.MovementTotal(kind=k, amount=v) for k, v in line.movements],
        closing=line.closing, bucket=line.bucket,
    )


def day_statement(s: DayStatement, closed: bool, platform: str = ""
                  ) -> finance_pb2.DayStatement:
    return finance_pb2.DayStatement(
        day=s.day, timezone=s.timezone, closed=closed,
        lines=[statement_line(line) for line in s.lines], movements=s.events,
        first_position=s.first_position, last_position=s.last_position, digest=s.digest,
        moved_lines=s.moved_lines, moved_lines_digest=s.moved_lines_digest,
        reconciliation=recon.STATES.get(s.reconciliation, 0),
        head=audit_pb2.SignedTreeHead(
            platform=platform, tree_size=s.tree_size, root=bytes.fromhex(s.tree_root),
            timestamp_us=s.head_signed_at_us, key_id=s.head_key_id,
            signature=bytes.fromhex(s.head_signature), reason=f"close {s.day}",
        ) if s.head_key_id else None,
    )


def tree_head(h: TreeHead) -> audit_pb2.SignedTreeHead:
    return audit_pb2.SignedTreeHead(platform=h.platform, tree_size=h.tree_size, root=h.root,
                                    timestamp_us=h.timestamp_us, key_id=h.key_id,
                                    signature=h.signature, reason=h.reason)
