"""Costs as the platform grows: the same operations on platforms of 10k, 100k and 1M resellers.

    python -m bench.scale                      # 10k, 100k and 1M (the largest takes minutes)
    python -m bench.scale --sizes 10000        # what the suite runs

Each size gets a fresh PostgreSQL schema and a ledger server (`ledger serve`) of its own. The
tree is brought in through ImportResellers (up to 20 levels deep, each member under a random
earlier one, joined over the past year), then a day's sales, one order per ten members spread
over the whole tree, through ImportOrders. Every operation is then timed through the API,
three times, and printed as the median wall time and the CPU per call of the server and of
everything else on the machine (PostgreSQL, nearly all of it). The last table shows each
row's growth from the smallest size to the largest: costs that stay flat are the point.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bench.cpu import Meter
from bench.servers import FINANCE_KEY, KEY, Schemas, rebuild_rate, start_ledger, stop
from ledger.v1 import (
    common_pb2,
    finance_pb2,
    finance_pb2_grpc,
    report_pb2,
    report_pb2_grpc,
    storefront_pb2,
    storefront_pb2_grpc,
)

SIZES = (10_000, 100_000, 1_000_000)
LEVELS = 20  # the deepest member is 19 levels below the top
PER_MESSAGE = 1000
DAY = "2026-12-01"  # the day of sales; the tree joined over the year before it
SALES_AT = datetime(2026, 12, 1, 10, tzinfo=UTC)
JOINED_FROM = datetime(2025, 12, 1, tzinfo=UTC)
MONTH = "2026-12"


@dataclass(frozen=True)
class Tree:
    sponsors: list[int]  # member n's sponsor's index; -1 at the top
    depths: list[int]

    @property
    def deepest(self) -> int:
        return max(range(len(self.depths)), key=self.depths.__getitem__)


def member_id(n: int) -> str:
    return f"m{n:07d}"


def random_tree(size: int, seed: int = 1) -> Tree:
    """The first ``LEVELS`` members in a line from the top (so the deepest level is always
    there), each later one under a random earlier member not at the deepest level: a random
    recursive tree (most members a dozen levels down or less) whose longest branches stop
    at ``LEVELS``, as on a platform where a few lines run deep."""
    draw = random.Random(seed)
    sponsors, depths, open_ = [-1], [0], [0]
    for n in range(1, size):
        sponsor = n - 1 if n < LEVELS else open_[draw.randrange(len(open_))]
        sponsors.append(sponsor)
        depths.append(depths[sponsor] + 1)
        if depths[n] < LEVELS - 1:
            open_.append(n)
    return Tree(sponsors, depths)


def stamp(at: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(at)
    return t


def reseller_messages(tree: Tree) -> Iterator[storefront_pb2.ImportResellersRequest]:
    size = len(tree.sponsors)
    step = (SALES_AT - timedelta(days=1) - JOINED_FROM) / size
    for start in range(0, size, PER_MESSAGE):
        yield storefront_pb2.ImportResellersRequest(members=[
            storefront_pb2.ImportedReseller(
                reseller_id=member_id(n),
                sponsor_id=member_id(tree.sponsors[n]) if tree.sponsors[n] >= 0 else "",
                enrolled_at=stamp(JOINED_FROM + step * n))
            for n in range(start, min(start + PER_MESSAGE, size))])


def order(n: int, seller: str, at: datetime) -> storefront_pb2.ImportedOrder:
    sale = 1_000 + n % 9_000
    return storefront_pb2.ImportedOrder(
        order_id=f"o{n}", customer_id=f"c{n}", reseller_id=seller, currency="CNY",
        lines=[common_pb2.OrderLine(sku=f"sku{n % 500}", category="general", quantity=1,
                                    unit_sale_price=sale, unit_supply_price=sale // 2,
                                    supplier_id="S1")],
        payment_id=f"w-o{n}", completed=True, paid_at=stamp(at))


def order_messages(size: int, seed: int = 2) -> Iterator[storefront_pb2.ImportOrdersRequest]:
    draw = random.Random(seed)
    count = size // 10
    for start in range(0, count, PER_MESSAGE):
        yield storefront_pb2.ImportOrdersRequest(orders=[
            order(n, member_id(draw.randrange(size)), SALES_AT + timedelta(seconds=n % 30_000))
            for n in range(start, min(start + PER_MESSAGE, count))])


@dataclass
class Cost:
    wall: float  # seconds, the median of the runs
    server: float  # CPU seconds per run
    rest: float  # CPU seconds per run, nearly all PostgreSQL's

    def cells(self) -> list[str]:
        return [f"{self.wall * 1000:,.1f}", f"{self.server * 1000:,.1f}",
                f"{self.rest * 1000:,.1f}"]


def timed(pid: int, call: Callable[[], Any], runs: int = 3, units: int = 1) -> Cost:
    """The median wall time of ``runs`` calls and their mean CPU, per one of ``units``."""
    walls = []
    meter = Meter(pid)
    for _ in range(runs):
        started = time.perf_counter()
        call()
        walls.append(time.perf_counter() - started)
    split = meter.read()
    return Cost(statistics.median(walls) / units, split.tested / runs / units,
                split.rest / runs / units)


class Platform:
    """One size's server and the calls the bench makes."""

    def __init__(self, address: str, pid: int) -> None:
        self.pid = pid
        self.channel = grpc.insecure_channel(address, options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024)])
        self.shop_md = (("authorization", f"Bearer {KEY}"),)
        self.finance_md = (("authorization", f"Bearer {FINANCE_KEY}"),)
        self.shop = storefront_pb2_grpc.StorefrontServiceStub(self.channel)
        self.report = report_pb2_grpc.ReportServiceStub(self.channel)
        self.finance = finance_pb2_grpc.FinanceServiceStub(self.channel)
        self.position = 0

    def caught_up(self) -> None:
        """Waits for the read models to reach the last write."""
        while self.report.GetProjectionStatus(
                report_pb2.GetProjectionStatusRequest(), metadata=self.shop_md,
                timeout=60).processed_position < self.position:
            time.sleep(0.005)

    def bring_in(self, tree: Tree) -> Cost:
        meter = Meter(self.pid)
        started = time.perf_counter()
        reply = self.shop.ImportResellers(reseller_messages(tree), metadata=self.shop_md,
                                          timeout=7200)
        assert reply.imported == len(tree.sponsors), list(reply.failures)[:3]
        self.position = reply.receipt.log_position
        self.caught_up()
        return per_unit(meter, started, len(tree.sponsors))

    def sell(self, size: int) -> Cost:
        meter = Meter(self.pid)
        started = time.perf_counter()
        reply = self.shop.ImportOrders(order_messages(size), metadata=self.shop_md,
                                       timeout=7200)
        assert reply.imported == size // 10, list(reply.failures)[:3]
        self.position = reply.receipt.log_position
        self.caught_up()
        return per_unit(meter, started, size // 10)

    def sale_by(self, seller: str) -> Callable[[], None]:
        counter = iter(range(10**9))

        def call() -> None:
            n = next(counter)
            oid = f"deep-{n}"
            line = common_pb2.OrderLine(sku="deep", category="general", quantity=1,
                                        unit_sale_price=5_000, unit_supply_price=2_000,
                                        supplier_id="S1")
            self.shop.PlaceOrder(storefront_pb2.PlaceOrderRequest(
                idempotency_key=f"{oid}p", order_id=oid, customer_id=f"dc{n}",
                reseller_id=seller, currency="CNY", lines=[line]), metadata=self.shop_md)
            paid = self.shop.PayOrder(storefront_pb2.PayOrderRequest(
                idempotency_key=f"{oid}y", order_id=oid, payment_id=f"w-{oid}",
                amount=5_000), metadata=self.shop_md)
            self.position = paid.receipt.log_position
            self.caught_up()
        return call

    def team_stats(self, as_of: datetime | None = None) -> Callable[[], None]:
        request = report_pb2.GetTeamStatsRequest(reseller_id=member_id(0), month=MONTH)
        if as_of is not None:
            request.as_of.CopyFrom(stamp(as_of))
        return lambda: self.report.GetTeamStats(request, metadata=self.shop_md)

    def team_member(self) -> None:
        self.report.GetTeamMember(report_pb2.GetTeamMemberRequest(reseller_id=member_id(0)),
                                  metadata=self.shop_md)

    def subtree_page(self, token: str = "", size: int = 100) -> report_pb2.ListSubtreeResponse:
        return self.report.ListSubtree(report_pb2.ListSubtreeRequest(
            reseller_id=member_id(0), max_depth=LEVELS, page_size=size, page_token=token),
            metadata=self.shop_md)

    def walk(self) -> tuple[Cost, Cost, int]:
        """The whole team, 1,000 a page: (per member, the page halfway, members seen)."""
        meter = Meter(self.pid)
        started = time.perf_counter()
        token, seen, tokens = "", 0, []
        while True:
            reply = self.subtree_page(token, 1000)
            seen += len(reply.members)
            token = reply.next_page_token
            if not token:
                break
            tokens.append(token)
        walk = per_unit(meter, started, seen)
        middle = tokens[len(tokens) // 2] if tokens else ""
        return walk, timed(self.pid, lambda: self.subtree_page(middle)), seen

    def close_day(self) -> Cost:
        meter = Meter(self.pid)
        started = time.perf_counter()
        reply = self.finance.CloseDay(finance_pb2.CloseDayRequest(
            idempotency_key=f"close-{DAY}", day=DAY), metadata=self.finance_md, timeout=3600)
        # The close is done when the read models hold it too (the closing balances they
        # write are most of its cost at scale): until then its statement waits for them.
        self.position = reply.receipt.log_position
        self.caught_up()
        return per_unit(meter, started, 1)

    def day_statement(self) -> None:
        self.finance.GetDayStatement(finance_pb2.GetDayStatementRequest(day=DAY),
                                     metadata=self.finance_md, timeout=3600)


def per_unit(meter: Meter, started: float, units: int) -> Cost:
    wall = time.perf_counter() - started
    split = meter.read()
    return Cost(wall / units, split.tested / units, split.rest / units)


def measure(schemas: Schemas, size: int) -> dict[str, Cost]:
    tree = random_tree(size)
    url = schemas.url(f"scale{size}")
    server, address = start_ledger(url)
    costs: dict[str, Cost] = {}
    try:
        p = Platform(address, server.pid)
        costs["bringing the tree in, per member"] = p.bring_in(tree)
        costs["a day's sales by ImportOrders, per order"] = p.sell(size)
        deepest = member_id(tree.deepest)
        costs[f"a sale by the deepest member (level {tree.depths[tree.deepest]})"] = timed(
            p.pid, p.sale_by(deepest))
        costs["GetTeamStats now, top leader"] = timed(p.pid, p.team_stats())
        costs["GetTeamStats as of a past time, top leader"] = timed(
            p.pid, p.team_stats(SALES_AT + timedelta(hours=3)))
        costs["GetTeamMember"] = timed(p.pid, p.team_member)
        costs["ListSubtree first page of 100"] = timed(p.pid, p.subtree_page)
        walk, middle, seen = p.walk()
        assert seen == size - 1, (seen, size)
        costs["ListSubtree page of 100 halfway through the walk"] = middle
        costs["walking the whole team 1,000 a page, per member"] = walk
        costs["CloseDay of the day of sales, read models caught up"] = p.close_day()
        costs["GetDayStatement of that day"] = timed(p.pid, p.day_statement)
        p.channel.close()
    finally:
        stop(server)
    rate, entries, split = rebuild_rate(url)
    costs["rebuild, per log entry"] = Cost(1 / rate, split.tested / entries,
                                           split.rest / entries)
    return costs


def print_tables(results: dict[int, dict[str, Cost]]) -> None:
    sizes = list(results)
    names = list(results[sizes[0]])
    print("\nms per operation (wall median of 3 / server CPU / PostgreSQL and the rest CPU)")
    header = ["operation", *(f"{size:,} members" for size in sizes)]
    rows = [[name, *(" / ".join(results[s][name].cells()) for s in sizes)] for name in names]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)))
    if len(sizes) > 1:
        first, last = sizes[0], sizes[-1]
        print(f"\ngrowth from {first:,} to {last:,} members (wall, server CPU)")
        for name in names:
            a, b = results[first][name], results[last][name]
            print(f"  {name}: {ratio(b.wall, a.wall)}, {ratio(b.server, a.server)}")


def ratio(b: float, a: float) -> str:
    return f"{b / a:.2f}×" if a > 0 else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES),
                        help="platform sizes in resellers (default: %(default)s)")
    parser.add_argument("--database-url", default=os.environ.get(
        "LEDGER_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    schemas = Schemas(args.database_url)
    results: dict[int, dict[str, Cost]] = {}
    try:
        for size in args.sizes:
            print(f"building a platform of {size:,} resellers…", flush=True)
            results[size] = measure(schemas, size)
            print_tables(results)  # each size as it is done: a larger one takes long
    finally:
        schemas.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

