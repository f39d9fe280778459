"""Reconciliation on the wire: the enums and messages of bills, breaks and a day's state,
and reading a bill out of ImportBill's stream. No rule is decided here: matching is the
domain's (ledger/domain/reconciliation.py), breaks are the read model's."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ledger.domain.bills import CSV, WECHAT
from ledger.domain.errors import InvalidInput
from ledger.domain.reconciliation import (
    AMOUNT_DIFFERS,
    NOT_IN_BILL,
    NOT_IN_LEDGER,
    STATE_DIFFERS,
    TRADE,
    TRANSFER,
)
from ledger.projections import reconciliation as r
from ledger.projections import reconciliation_queries as rq
from ledger.v1 import finance_pb2

MAX_BILL_BYTES = 64 * 1024 * 1024

BILL_KINDS = {finance_pb2.BILL_KIND_TRADE: TRADE, finance_pb2.BILL_KIND_TRANSFER: TRANSFER}
BILL_KIND_ENUMS = {v: k for k, v in BILL_KINDS.items()}
FORMATS = {finance_pb2.BILL_FORMAT_WECHAT: WECHAT, finance_pb2.BILL_FORMAT_CSV: CSV}
STATES = {
    rq.NOT_RUN: finance_pb2.RECONCILIATION_STATE_NOT_RUN,
    rq.CLEAN: finance_pb2.RECONCILIATION_STATE_CLEAN,
    rq.BREAKS_OPEN: finance_pb2.RECONCILIATION_STATE_BREAKS_OPEN,
    rq.BREAKS_ACKNOWLEDGED: finance_pb2.RECONCILIATION_STATE_BREAKS_ACKNOWLEDGED,
}
BREAK_TYPES = {
    AMOUNT_DIFFERS: finance_pb2.BREAK_TYPE_AMOUNT_DIFFERS,
    STATE_DIFFERS: finance_pb2.BREAK_TYPE_STATE_DIFFERS,
    NOT_IN_LEDGER: finance_pb2.BREAK_TYPE_NOT_IN_LEDGER,
    NOT_IN_BILL: finance_pb2.BREAK_TYPE_NOT_IN_BILL,
}
STATUSES = {
    r.OPEN: finance_pb2.BREAK_STATUS_OPEN,
    r.ACKNOWLEDGED: finance_pb2.BREAK_STATUS_ACKNOWLEDGED,
    r.RESOLVED: finance_pb2.BREAK_STATUS_RESOLVED,
}
STATUS_NAMES = {v: k for k, v in STATUSES.items()}


async def read_bill(
    messages: AsyncIterator[finance_pb2.ImportBillRequest],
) -> tuple[finance_pb2.ImportBillRequest, bytes]:
    """The first message (what the bill is) and the whole file's bytes."""
    first: finance_pb2.ImportBillRequest | None = None
    chunks: list[bytes] = []
    size = 0
    async for message in messages:
        if first is None:
            first = message
        size += len(message.data)
        if size > MAX_BILL_BYTES:
            raise InvalidInput([("data", f"a bill is at most {MAX_BILL_BYTES} bytes")])
        chunks.append(message.data)
    if first is None:
        raise InvalidInput([("", "the stream carried no message: send the bill")])
    violations = []
    if first.kind not in BILL_KINDS:
        violations.append(("kind", "must be BILL_KIND_TRADE or BILL_KIND_TRANSFER"))
    if first.format not in FORMATS:
        violations.append(("format", "must be BILL_FORMAT_WECHAT or BILL_FORMAT_CSV"))
    if not size:
        violations.append(("data", "the bill is empty"))
    if violations:
        raise InvalidInput(violations)
    return first, b"".join(chunks)


def summary(day: rq.DayReconciliation) -> finance_pb2.ReconciliationSummary:
    return finance_pb2.ReconciliationSummary(
        day=day.day,
        state=STATES[day.state],
        matched=day.matched,
        timing_differences=day.timing,
        open_breaks=day.open,
        acknowledged_breaks=day.acknowledged,
        resolved_breaks=day.resolved,
    )


def side(found: rq.Side | None) -> finance_pb2.BreakSide | None:
    if found is None:
        return None
    return finance_pb2.BreakSide(
        day=found.day,
        amount=found.amount,
        currency=found.currency,
        state=found.state,
        rail_refs=found.rail_refs,
    )


def break_message(row: rq.BreakRow) -> finance_pb2.Break:
    return finance_pb2.Break(
        day=row.day,
        break_id=row.break_id,
        bill_kind=BILL_KIND_ENUMS[row.bill_kind],
        record_kind=row.kind,
        reference=row.ref,
        type=BREAK_TYPES[row.type],
        status=STATUSES[row.status],
        ledger=side(row.ledger),
        bill=side(row.bill),
        resolved_by=row.resolved_by,
        reason=row.reason,
        acknowledged_by=row.acknowledged_by,
    )
