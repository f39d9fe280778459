"""What a person reads from ReportService on the command line: ``ledger team tree`` (a team
drawn as a tree, each member with the month's numbers) and ``ledger balances`` (an account
kind's balances as a table), amounts in the currency's unit (15.99), drawn with rich.

rich writes colour and box drawing to a terminal only; into a file or a pipe the same
content comes out as plain text, without escape codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
from ledger.clients.money import format_amount
from ledger.clients.sdk import Ledger, add_connection_options, tls_from_args
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from ledger.v1 import report_pb2

PAGE = 1000


def console() -> Console:
    """Standard output; off a terminal wide enough that a table's rows are never folded."""
    return Console() if sys.stdout.isatty() else Console(width=200, no_color=True)


def add_reader_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        default=os.environ.get("LEDGER_ADDRESS", "127.0.0.1:50051"),
        help="the ledger's gRPC address (or LEDGER_ADDRESS)",
    )
    parser.add_argument(
        "--key",
        default=os.environ.get("LEDGER_API_KEY", ""),
        help="any API key of the platform (or LEDGER_API_KEY)",
    )
    add_connection_options(parser)


def connect(args: argparse.Namespace) -> Ledger:
    if not args.key:
        sys.exit("ledger: an API key is needed (--key or LEDGER_API_KEY)")
    return Ledger(args.address, args.key, tls=tls_from_args(args))


def refused(error: grpc.RpcError) -> int:
    print(
        f"ledger: {error.code().name}: {error.details()}",  # type: ignore[attr-defined]
        file=sys.stderr,
    )
    return 1


# --- ledger team tree ----------------------------------------------------------------------


def subtree(ledger: Ledger, reseller_id: str, depth: int) -> Iterator[report_pb2.SubtreeMember]:
    token = ""
    while True:
        page = ledger.report.ListSubtree(
            report_pb2.ListSubtreeRequest(
                reseller_id=reseller_id, max_depth=depth, page_size=PAGE, page_token=token
            )
        )
        yield from page.members
        token = page.next_page_token
        if not token:
            return


def month_numbers(ledger: Ledger, reseller_id: str, month: str) -> str:
    """A member's month, as DOMAIN.md's team numbers: own sales and team GMV per currency,
    new members, and active members of those at the month's start."""
    stats = ledger.report.GetTeamStats(
        report_pb2.GetTeamStatsRequest(reseller_id=reseller_id, month=month)
    )
    sales = (
        "; ".join(
            f"own sales {format_amount(s.own_sales, s.currency)} {s.currency}, team GMV "
            f"{format_amount(s.team_gmv, s.currency)} {s.currency}"
            + (
                f" ({s.progress_bps / 100:.2f}% of target {format_amount(s.target, s.currency)})"
                if s.target
                else ""
            )
            for s in stats.sales
        )
        or "no sales"
    )
    return (
        f"{sales}; new members {stats.new_members}, active "
        f"{stats.active_members} of {stats.members_at_start}"
    )


def team_tree(ledger: Ledger, reseller_id: str, month: str, depth: int = 0) -> Tree:
    """``reseller_id``'s team as a tree (everyone below, to ``depth`` levels; 0: all), each
    member labelled with their numbers for ``month``."""

    def label(member: str) -> str:
        return f"[bold]{member}[/bold]  {month_numbers(ledger, member, month)}"

    root = Tree(label(reseller_id))
    nodes = {reseller_id: root}
    for member in subtree(ledger, reseller_id, depth):  # sponsors come before their downline
        parent = nodes.get(member.sponsor_id, root)
        nodes[member.reseller_id] = parent.add(label(member.reseller_id))
    return root


def this_month(timezone: str) -> str:
    from ledger.projections.clock import Calendar

    return Calendar(timezone).month(datetime.now(UTC))


def run_tree(args: argparse.Namespace, timezone: str) -> int:
    with connect(args) as ledger:
        try:
            tree = team_tree(ledger, args.reseller, args.month or this_month(timezone), args.depth)
        except grpc.RpcError as error:
            return refused(error)
    out = console()
    out.print(f"Team of {args.reseller}, {args.month or this_month(timezone)}", markup=False)
    out.print(tree)
    return 0


def add_tree_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reseller", help="the reseller whose team is drawn (at the root)")
    parser.add_argument(
        "--month",
        default="",
        help="calendar month YYYY-MM in the platform's time zone (default: this month)",
    )
    parser.add_argument(
        "--depth", type=int, default=0, help="levels below the reseller to draw (default 0: all)"
    )
    add_reader_options(parser)


# --- ledger balances -----------------------------------------------------------------------

COLUMNS = ("frozen", "available", "in_flight", "paid_out", "debt")


def all_balances(ledger: Ledger, kind: str, currency: str) -> Iterator[report_pb2.AccountBalance]:
    token = ""
    while True:
        page = ledger.report.ListBalances(
            report_pb2.ListBalancesRequest(
                kind=kind,
                currency=currency,
                page_size=PAGE,
                page_token=token,
                order_by=report_pb2.BALANCE_ORDER_ACCOUNT,
            )
        )
        yield from page.balances
        token = page.next_page_token
        if not token:
            return


def balances_table(balances: Iterator[report_pb2.AccountBalance], title: str) -> Table:
    table = Table(title=title)
    table.add_column("account")
    table.add_column("currency")
    for column in COLUMNS:
        table.add_column(column.replace("_", " "), justify="right")
    for b in balances:
        table.add_row(
            b.account,
            b.currency,
            *(format_amount(getattr(b, column), b.currency) for column in COLUMNS),
        )
    return table


def run_balances(args: argparse.Namespace) -> int:
    with connect(args) as ledger:
        try:
            rows = list(all_balances(ledger, args.kind, args.currency))
        except grpc.RpcError as error:
            return refused(error)
    what = f"{args.kind or 'every'} account" + (f" in {args.currency}" if args.currency else "")
    console().print(balances_table(iter(rows), f"Balances: {what} ({len(rows)})"))
    return 0


def add_balances_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind",
        default="reseller",
        help="the kind of account to list: reseller (default), supplier, "
        "platform, clearing…; '' for every kind",
    )
    parser.add_argument("--currency", default="", help="only this ISO 4217 currency")
    add_reader_options(parser)
