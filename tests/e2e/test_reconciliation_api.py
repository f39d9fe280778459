"""Reconciliation through gRPC, on both stores: bills imported as a client stream, breaks
as a read model, resolved by a correcting write or by finance's acknowledgement, and
CloseDay refusing a day with a break open. The breaks' read model alone, on both stores, is
in tests/integration/test_reconciliation_breaks.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
from ledger.clients.sdk import LedgerClient, idempotency_key

from bench.reconcile import trade_bill as wechat_trade_bill
from bench.reconcile import wechat
from ledger.v1 import finance_pb2
from tests.conftest import Clock, Running
from tests.e2e.test_settlement_payouts import Books, sell, settle, withdraw
from tests.helpers import identify, refused, team
from tests.integration.test_reconciliation_breaks import DAY

TRANSFER_HEADER = (
    "发起时间,商户号,商户单号,微信转账单号,收款用户标识,货币种类,转账金额(元),"
    "转账状态,失败原因,最后更新时间"
)


def transfer_bill(payout_id: str, yuan: str, state: str) -> bytes:
    row = [
        f"{DAY} 11:00:00",
        "1900000109",
        payout_id,
        "1330000071100999991182020050700019480001",
        "oUpF8u",
        "CNY",
        yuan,
        state,
        "用户24小时内未确认收款",
        f"{DAY} 11:00:01",
    ]
    return wechat(TRANSFER_HEADER, [row], "总笔数,总金额(元)", ["1", yuan])


def trade_bill(*payments: tuple[str, str]) -> bytes:
    return wechat_trade_bill(DAY, payments)


def import_bill(
    finance: LedgerClient,
    data: bytes,
    kind: int,
    *,
    key: str = "",
    fmt: int = finance_pb2.BILL_FORMAT_WECHAT,
) -> finance_pb2.ImportBillResponse:
    """In several messages, as a large bill would come."""

    def messages() -> Iterator[finance_pb2.ImportBillRequest]:
        yield finance_pb2.ImportBillRequest(
            idempotency_key=key or idempotency_key(),
            day=DAY,
            kind=kind,
            format=fmt,
            data=data[:100],
        )
        for start in range(100, len(data), 100):
            yield finance_pb2.ImportBillRequest(data=data[start : start + 100])

    return finance.finance.ImportBill(messages(), timeout=30)


def breaks(finance: LedgerClient, **query: object) -> finance_pb2.ListBreaksResponse:
    return finance.finance.ListBreaks(finance_pb2.ListBreaksRequest(day=DAY, **query))


def close(finance: LedgerClient) -> finance_pb2.CloseDayResponse:
    return finance.finance.CloseDay(
        finance_pb2.CloseDayRequest(idempotency_key=idempotency_key(), day=DAY)
    )


def a_payout_sent_on_the_day(
    shop: LedgerClient, admin: LedgerClient, finance: LedgerClient, clock: Clock, books: Books
) -> str:
    """Carol's commission settled, 15.00 withdrawn and approved (sent to the rail) on DAY,
    and a customer's payment w-O2 of 99.99 that day; the clock then a day later."""
    team(shop)
    identify(finance, "carol")
    sell(shop, books, "O1")
    clock.advance(days=8)  # 2026-11-09, 10:00 in Shanghai
    settle(admin, books)
    payout = withdraw(shop, "carol", 1500, books)
    books.saw(
        finance.finance.ApprovePayout(
            finance_pb2.ApprovePayoutRequest(
                idempotency_key=idempotency_key(), payout_id=payout.payout_id
            )
        ).receipt
    )
    sell(shop, books, "O2")
    clock.advance(days=1)
    return payout.payout_id


def test_an_expired_transfer_is_a_break_until_marked_failed_then_the_day_closes_clean(
    shop: LedgerClient, admin: LedgerClient, finance: LedgerClient, clock: Clock
) -> None:
    books = Books(shop)
    payout_id = a_payout_sent_on_the_day(shop, admin, finance, clock, books)
    assert books.of("reseller:carol") == {"frozen": 1599, "available": 99, "in_flight": 1500}

    trade = import_bill(finance, trade_bill(("w-O2", "99.99")), finance_pb2.BILL_KIND_TRADE)
    assert trade.reconciliation.state == finance_pb2.RECONCILIATION_STATE_CLEAN
    imported = import_bill(
        finance, transfer_bill(payout_id, "15.00", "FAIL"), finance_pb2.BILL_KIND_TRANSFER
    )
    assert (imported.lines, imported.already_imported, imported.day) == (1, False, DAY)
    assert imported.reconciliation.state == finance_pb2.RECONCILIATION_STATE_BREAKS_OPEN
    [found] = breaks(finance).breaks
    assert found.break_id == f"payout:{payout_id}:state_differs"
    assert (found.type, found.status) == (
        finance_pb2.BREAK_TYPE_STATE_DIFFERS,
        finance_pb2.BREAK_STATUS_OPEN,
    )
    assert (found.ledger.day, found.ledger.amount, found.ledger.state) == (DAY, 1500, "pending")
    assert (found.bill.amount, found.bill.state) == (1500, "failed")
    assert list(found.bill.rail_refs) == ["1330000071100999991182020050700019480001"]

    refusal = refused(lambda: close(finance))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "RECONCILIATION_OPEN",
    )
    statement = finance.finance.GetDayStatement(finance_pb2.GetDayStatementRequest(day=DAY))
    assert not statement.statement.closed  # nothing was shut by the refused close
    assert statement.statement.reconciliation == finance_pb2.RECONCILIATION_STATE_BREAKS_OPEN

    failed = finance.finance.MarkPayoutFailed(
        finance_pb2.MarkPayoutFailedRequest(
            idempotency_key=idempotency_key(), payout_id=payout_id, reason="expired unconfirmed"
        )
    )
    books.saw(failed.receipt)
    assert books.of("reseller:carol") == {"frozen": 1599, "available": 1599}
    after = breaks(finance, min_log_position=failed.receipt.log_position)
    [resolved] = after.breaks
    assert (resolved.status, resolved.resolved_by) == (
        finance_pb2.BREAK_STATUS_RESOLVED,
        "payout_failed",
    )
    assert after.reconciliation.state == finance_pb2.RECONCILIATION_STATE_CLEAN
    assert breaks(finance, status=finance_pb2.BREAK_STATUS_OPEN).breaks == []

    closed = close(finance).statement
    assert closed.closed
    assert closed.reconciliation == finance_pb2.RECONCILIATION_STATE_CLEAN
    again = finance.finance.GetDayStatement(finance_pb2.GetDayStatementRequest(day=DAY))
    assert again.statement.reconciliation == finance_pb2.RECONCILIATION_STATE_CLEAN


def test_a_bill_imported_twice_changes_nothing_and_an_acknowledged_break_lets_the_day_close(
    shop: LedgerClient, admin: LedgerClient, finance: LedgerClient, clock: Clock
) -> None:
    books = Books(shop)
    a_payout_sent_on_the_day(shop, admin, finance, clock, books)
    bill = trade_bill(("w-O2", "99.99"), ("w-unknown", "5.00"))
    first = import_bill(finance, bill, finance_pb2.BILL_KIND_TRADE)
    second = import_bill(finance, bill, finance_pb2.BILL_KIND_TRADE)
    assert (second.already_imported, second.digest, second.lines) == (True, first.digest, 2)
    [stranger] = breaks(finance, kind=finance_pb2.BILL_KIND_TRADE).breaks
    assert (stranger.reference, stranger.type) == (
        "w-unknown",
        finance_pb2.BREAK_TYPE_NOT_IN_LEDGER,
    )
    assert not stranger.HasField("ledger") and stranger.bill.amount == 500
    assert breaks(finance, kind=finance_pb2.BILL_KIND_TRANSFER).breaks == []

    no_reason = refused(
        lambda: finance.finance.AcknowledgeBreak(
            finance_pb2.AcknowledgeBreakRequest(
                idempotency_key=idempotency_key(), day=DAY, break_id=stranger.break_id
            )
        )
    )
    assert no_reason.code == grpc.StatusCode.INVALID_ARGUMENT and "reason" in no_reason.fields
    unknown = refused(
        lambda: finance.finance.AcknowledgeBreak(
            finance_pb2.AcknowledgeBreakRequest(
                idempotency_key=idempotency_key(),
                day=DAY,
                break_id="payment:nope:not_in_ledger",
                reason="x",
            )
        )
    )
    assert unknown.code == grpc.StatusCode.NOT_FOUND
    acked = finance.finance.AcknowledgeBreak(
        finance_pb2.AcknowledgeBreakRequest(
            idempotency_key=idempotency_key(),
            day=DAY,
            break_id=stranger.break_id,
            reason="a test payment made from the merchant console",
        )
    )
    assert acked.acknowledged.status == finance_pb2.BREAK_STATUS_ACKNOWLEDGED
    assert (acked.acknowledged.resolved_by, acked.acknowledged.acknowledged_by) == (
        "acknowledged",
        "fin",
    )
    listed = breaks(finance)
    assert listed.reconciliation.state == finance_pb2.RECONCILIATION_STATE_BREAKS_ACKNOWLEDGED
    assert listed.reconciliation.matched == 1
    assert close(finance).statement.reconciliation == (
        finance_pb2.RECONCILIATION_STATE_BREAKS_ACKNOWLEDGED
    )


def test_an_unreadable_bill_is_refused_with_its_lines_named_and_nothing_recorded(
    finance: LedgerClient,
) -> None:
    bill = trade_bill(("w-O2", "99.99"))
    cut = b"\r\n".join(bill.split(b"\r\n")[:2])
    refusal = refused(lambda: import_bill(finance, cut, finance_pb2.BILL_KIND_TRADE))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "BILL_UNREADABLE")
    bad = refused(
        lambda: import_bill(
            finance,
            b"t,r,w-1,payment,1.5,CNY,success\n",
            finance_pb2.BILL_KIND_TRADE,
            fmt=finance_pb2.BILL_FORMAT_CSV,
        )
    )
    assert "bill line 1" in bad.fields
    no_kind = refused(lambda: import_bill(finance, bill, finance_pb2.BILL_KIND_UNSPECIFIED))
    assert "kind" in no_kind.fields
    listed = breaks(finance)
    assert listed.reconciliation.state == finance_pb2.RECONCILIATION_STATE_NOT_RUN


LEDGER = str(Path(sys.executable).parent / "ledger")


def test_the_cli_reconciles_a_bill_file_and_lists_the_breaks_as_a_table_and_as_csv(
    running: Running,
    shop: LedgerClient,
    admin: LedgerClient,
    finance: LedgerClient,
    clock: Clock,
    tmp_path: Path,
) -> None:
    books = Books(shop)
    payout_id = a_payout_sent_on_the_day(shop, admin, finance, clock, books)
    bill = tmp_path / "transfer.csv"
    bill.write_bytes(transfer_bill(payout_id, "15.00", "FAIL"))
    base = [LEDGER, "finance", "--address", running.target, "--key", running.keys.finance]

    def ledger(*args: str) -> str:
        done = subprocess.run([*base, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    said = ledger("reconcile", "--day", DAY, "--bill", str(bill), "--kind", "transfer")
    assert f"{DAY} transfer bill, 1 lines" in said and "breaks_open" in said
    again = ledger("reconcile", "--day", DAY, "--bill", str(bill), "--kind", "transfer")
    assert "imported before: nothing changed" in again
    table = ledger("breaks", "--day", DAY)
    assert payout_id in table and "state_differs" in table and "open" in table
    export = tmp_path / "breaks.csv"
    ledger("breaks", "--day", DAY, "--csv", str(export))
    header, row = export.read_text(encoding="utf-8-sig").splitlines()
    assert header.startswith("day,break_id,bill,record,reference,type,status")
    assert row.startswith(
        f"{DAY},payout:{payout_id}:state_differs,transfer,payout,{payout_id},"
        "state_differs,open,2026-11-09,15.00,pending,2026-11-09,15.00,failed"
    )
