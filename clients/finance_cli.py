"""`ledger finance …`: what finance runs every day, over the FinanceService.

    ledger finance payable --csv payable.csv
    ledger finance statement --day 2026-11-21 --csv 2026-11-21.csv
    ledger finance account reseller:carol --from 2026-11-01 --to 2026-11-30
    ledger finance reconcile --day 2026-11-21 --bill trade.csv --kind trade --format wechat
    ledger finance breaks --day 2026-11-21 [--csv 2026-11-21-breaks.csv]
    ledger finance tax month --month 2026-01 --csv 2026-01-tax.csv
    ledger finance tax quarter --quarter 2026Q1 --csv 2026Q1.csv

The server address and the finance key come from --address/--key or LEDGER_ADDRESS and
LEDGER_FINANCE_KEY. CSV files open in a spreadsheet as they are: a header row, one row per
item, amounts as decimals in the currency's unit (99.99, not 9999) beside the currency code.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ledger.clients.money import format_amount
from ledger.clients.sdk import LedgerClient, add_connection_options, tls_from_args

from ledger.v1 import finance_pb2, tax_pb2

MOVEMENT_KINDS = ("payment", "refund", "settlement", "payout_requested", "payout_rejected",
                  "payout_paid", "payout_failed")


def decimal_amount(amount: int, currency: str) -> str:
    """Minor units as a decimal in the currency's unit: 9999 CNY → 99.99, 500 JPY → 500."""
    return format_amount(amount, currency)


def payable_rows(client: LedgerClient) -> Iterator[list[str]]:
    # amount is the gross, as before tax was withheld; gross, tax and net say it in full.
    yield ["payout_id", "account", "currency", "amount", "status", "requested_at",
           "requested_by", "gross", "tax", "net"]
    token = ""
    while True:
        reply = client.finance.ListPayable(finance_pb2.ListPayableRequest(
            page_size=1000, page_token=token))
        for p in reply.payouts:
            yield [p.payout_id, p.account, p.currency, decimal_amount(p.amount, p.currency),
                   finance_pb2.PayoutStatus.Name(p.status).removeprefix("PAYOUT_STATUS_")
                   .lower(), p.requested_at.ToDatetime().isoformat() + "Z", p.requested_by,
                   *(decimal_amount(v, p.currency) for v in (p.amount, p.tax, p.net))]
        token = reply.next_page_token
        if not token:
            return


def statement_rows(client: LedgerClient, day: str) -> Iterator[list[str]]:
    """Every line of the day's statement, a page at a time."""
    yield ["day", "closed", "account", "currency", "bucket", "opening", *MOVEMENT_KINDS,
           "closing"]
    token = ""
    while True:
        reply = client.finance.GetDayStatement(finance_pb2.GetDayStatementRequest(
            day=day, page_size=1000, page_token=token))
        statement = reply.statement
        for line in statement.lines:
            moved = {m.kind: m.amount for m in line.movements}
            yield [statement.day, "yes" if statement.closed else "no", line.account,
                   line.currency, line.bucket or "all",
                   decimal_amount(line.opening, line.currency),
                   *(decimal_amount(moved.get(k, 0), line.currency) for k in MOVEMENT_KINDS),
                   decimal_amount(line.closing, line.currency)]
        token = reply.next_page_token
        if not token:
            return


PAYEE_COLUMNS = ["account", "kind", "name", "id_type", "id_number", "tax_id"]


def payee_cells(p: tax_pb2.Payee) -> list[str]:
    kind = tax_pb2.PayeeKind.Name(p.kind).removeprefix("PAYEE_KIND_").lower() \
        if p.recorded else "not recorded"
    return [p.account, kind, p.identity.name, p.identity.id_type, p.identity.id_number,
            p.tax_id]


def month_rows(client: LedgerClient, month: str) -> Iterator[list[str]]:
    reply = client.tax.GetMonthlyWithholding(tax_pb2.GetMonthlyWithholdingRequest(month=month))
    yield ["month", *PAYEE_COLUMNS, "currency", "payouts", "gross", "tax", "net"]
    for m in reply.payees:
        yield [reply.month, *payee_cells(m.payee), m.currency, str(m.payouts),
               *(decimal_amount(v, m.currency) for v in (m.gross, m.tax, m.net))]


def quarter_rows(client: LedgerClient, quarter: str) -> Iterator[list[str]]:
    report = client.tax.GetQuarterReport(tax_pb2.GetQuarterReportRequest(
        quarter=quarter)).report
    yield ["quarter", "closed", *PAYEE_COLUMNS, "currency", "earned", "clawed_back", "net",
           "paid_gross", "tax_withheld"]
    for line in report.lines:
        yield [report.quarter, "yes" if report.closed else "no", *payee_cells(line.payee),
               line.currency,
               *(decimal_amount(v, line.currency) for v in (
                   line.earned, line.clawed_back, line.net, line.paid_gross,
                   line.tax_withheld))]


def write_csv(rows: Iterator[list[str]], target: str) -> None:
    """UTF-8 with a byte-order mark, so spreadsheet programs read Chinese names right."""
    if target == "-":
        csv.writer(sys.stdout).writerows(rows)
        return
    with open(target, "w", newline="", encoding="utf-8-sig") as out:
        csv.writer(out).writerows(rows)


def show_account(client: LedgerClient, account: str, from_day: str, to_day: str) -> None:
    print(f"{account}  {from_day} … {to_day}")
    print(f"{'when (UTC)':20} {'kind':18} {'bucket':10} {'amount':>14}  source")
    token = ""
    while True:
        reply = client.finance.GetAccountStatement(finance_pb2.GetAccountStatementRequest(
            account=account, from_day=from_day, to_day=to_day, page_size=1000,
            page_token=token))
        for m in reply.movements:
            print(f"{m.at.ToDatetime():%Y-%m-%d %H:%M:%S} {m.kind:18} {m.bucket:10} "
                  f"{decimal_amount(m.amount, m.currency):>10} {m.currency}  {m.source}")
        token = reply.next_page_token
        if not token:
            break
    for t in reply.totals:
        print(f"{t.currency}: opening {decimal_amount(t.opening, t.currency)}, "
              f"closing {decimal_amount(t.closing, t.currency)}")


BILL_KINDS = {"trade": finance_pb2.BILL_KIND_TRADE, "transfer": finance_pb2.BILL_KIND_TRANSFER}
BILL_FORMATS = {"wechat": finance_pb2.BILL_FORMAT_WECHAT, "csv": finance_pb2.BILL_FORMAT_CSV}
CHUNK = 1024 * 1024


def name_of(enum: Any, value: int, prefix: str) -> str:
    return enum.Name(value).removeprefix(prefix).lower()


def reconcile(client: LedgerClient, day: str, bill: str, kind: str, fmt: str) -> None:
    """Sends the bill in 1 MiB messages; keyed by its digest, so running it again (after a
    lost answer, or by mistake) records nothing twice."""
    import hashlib

    data = Path(bill).read_bytes()
    key = f"bill:{hashlib.sha256(data).hexdigest()}"

    def messages() -> Iterator[finance_pb2.ImportBillRequest]:
        yield finance_pb2.ImportBillRequest(idempotency_key=key, day=day, kind=BILL_KINDS[kind],
                                            format=BILL_FORMATS[fmt], data=data[:CHUNK])
        for start in range(CHUNK, len(data), CHUNK):
            yield finance_pb2.ImportBillRequest(data=data[start:start + CHUNK])

    reply = client.finance.ImportBill(messages(), timeout=600)
    again = " (imported before: nothing changed)" if reply.already_imported else ""
    print(f"{reply.day} {kind} bill, {reply.lines} lines, sha256 {reply.digest}{again}")
    print_summary(reply.reconciliation)


def print_summary(day: finance_pb2.ReconciliationSummary) -> None:
    state = name_of(finance_pb2.ReconciliationState, day.state, "RECONCILIATION_STATE_")
    print(f"{day.day}: {state}; matched {day.matched} (timing differences "
          f"{day.timing_differences}); breaks open {day.open_breaks}, acknowledged "
          f"{day.acknowledged_breaks}, resolved {day.resolved_breaks}")


BREAK_COLUMNS = ["day", "break_id", "bill", "record", "reference", "type", "status",
                 "ledger_day", "ledger_amount", "ledger_state", "bill_day", "bill_amount",
                 "bill_state", "rail_refs", "currency", "resolved_by", "reason",
                 "acknowledged_by"]


def break_rows(client: LedgerClient, day: str) -> Iterator[list[str]]:
    """Every break of the day with both sides, a page at a time (the CSV export)."""
    yield BREAK_COLUMNS
    token = ""
    while True:
        reply = client.finance.ListBreaks(finance_pb2.ListBreaksRequest(
            day=day, page_size=1000, page_token=token))
        for b in reply.breaks:
            currency = b.ledger.currency or b.bill.currency
            sides = []
            for side in (b.ledger, b.bill):
                given = bool(side.day)
                sides += [side.day, decimal_amount(side.amount, currency) if given else "",
                          side.state]
            yield [b.day, b.break_id, name_of(finance_pb2.BillKind, b.bill_kind, "BILL_KIND_"),
                   b.record_kind, b.reference,
                   name_of(finance_pb2.BreakType, b.type, "BREAK_TYPE_"),
                   name_of(finance_pb2.BreakStatus, b.status, "BREAK_STATUS_"), *sides,
                   " ".join(b.bill.rail_refs), currency, b.resolved_by, b.reason,
                   b.acknowledged_by]
        token = reply.next_page_token
        if not token:
            return


def show_breaks(client: LedgerClient, day: str) -> None:
    rows = list(break_rows(client, day))
    print_summary(client.finance.ListBreaks(finance_pb2.ListBreaksRequest(
        day=day, page_size=1)).reconciliation)
    if len(rows) == 1:
        return
    shown = [0, 2, 4, 5, 6, 8, 9, 11, 12, 14, 15]  # the columns that fit a terminal
    table = [[row[i] for i in shown] for row in rows]
    table[0] = ["day", "bill", "reference", "type", "status", "ledger", "state", "bill",
                "state", "currency", "resolved_by"]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True))
              .rstrip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=os.environ.get("LEDGER_ADDRESS",
                                                            "127.0.0.1:50051"),
                        help="the ledger's gRPC address (or LEDGER_ADDRESS)")
    parser.add_argument("--key", default=os.environ.get("LEDGER_FINANCE_KEY", ""),
                        help="a finance API key (or LEDGER_FINANCE_KEY)")
    add_connection_options(parser)
    sub = parser.add_subparsers(dest="finance_command", required=True)
    payable = sub.add_parser("payable", help="payouts waiting for finance, as CSV")
    payable.add_argument("--csv", default="-", help="file to write (default: stdout)")
    statement = sub.add_parser("statement", help="a day's statement, as CSV")
    statement.add_argument("--day", required=True, help="YYYY-MM-DD")
    statement.add_argument("--csv", default="-", help="file to write (default: stdout)")
    account = sub.add_parser("account", help="an account's movements, in the terminal")
    account.add_argument("account", help="e.g. reseller:carol or supplier:S1")
    account.add_argument("--from", dest="from_day", required=True, help="YYYY-MM-DD")
    account.add_argument("--to", dest="to_day", required=True, help="YYYY-MM-DD")
    bill = sub.add_parser("reconcile", help="import the payment rail's bill of a day and "
                                            "match it against the ledger")
    bill.add_argument("--day", required=True, help="YYYY-MM-DD: the day the bill is for")
    bill.add_argument("--bill", required=True, help="the bill file")
    bill.add_argument("--kind", choices=sorted(BILL_KINDS), default="trade",
                      help="trade: payments and refunds; transfer: payouts")
    bill.add_argument("--format", dest="fmt", choices=sorted(BILL_FORMATS), default="wechat",
                      help="the bill's layout: wechat (WeChat Pay's download, the default) or "
                           "csv (time,rail_ref,our_ref,kind,amount,currency,state)")
    breaks = sub.add_parser("breaks", help="a day's reconciliation breaks: a table, or the "
                                           "whole reconciliation as CSV with --csv")
    breaks.add_argument("--day", required=True, help="YYYY-MM-DD")
    breaks.add_argument("--csv", default="", help="write CSV to this file ('-': stdout)")
    tax = sub.add_parser("tax", help="income tax withheld: the monthly filing, the quarterly "
                                     "report (CSV)")
    reports = tax.add_subparsers(dest="tax_report", required=True)
    month = reports.add_parser("month", help="tax withheld per payee in a month")
    month.add_argument("--month", required=True, help="YYYY-MM")
    month.add_argument("--csv", default="-", help="file to write (default: stdout)")
    quarter = reports.add_parser("quarter", help="the quarterly report (Decree 810)")
    quarter.add_argument("--quarter", required=True, help="YYYYQn, e.g. 2026Q1")
    quarter.add_argument("--csv", default="-", help="file to write (default: stdout)")


def run(args: argparse.Namespace) -> int:
    if not args.key:
        print("ledger finance: a finance key is needed (--key or LEDGER_FINANCE_KEY)",
              file=sys.stderr)
        return 2
    import grpc

    with LedgerClient(args.address, args.key, tls=tls_from_args(args)) as client:
        try:
            if args.finance_command == "payable":
                write_csv(payable_rows(client), args.csv)
            elif args.finance_command == "statement":
                write_csv(statement_rows(client, args.day), args.csv)
            elif args.finance_command == "reconcile":
                reconcile(client, args.day, args.bill, args.kind, args.fmt)
            elif args.finance_command == "breaks" and args.csv:
                write_csv(break_rows(client, args.day), args.csv)
            elif args.finance_command == "breaks":
                show_breaks(client, args.day)
            elif args.finance_command == "tax" and args.tax_report == "month":
                write_csv(month_rows(client, args.month), args.csv)
            elif args.finance_command == "tax":
                write_csv(quarter_rows(client, args.quarter), args.csv)
            else:
                show_account(client, args.account, args.from_day, args.to_day)
        except grpc.RpcError as error:
            code, details = error.code(), error.details()  # type: ignore[attr-defined]
            print(f"ledger finance: {code.name}: {details}", file=sys.stderr)
            return 1
        except OSError as error:  # a bill file that cannot be read
            print(f"ledger finance: {error.filename}: {error.strerror}", file=sys.stderr)
            return 2
    return 0
