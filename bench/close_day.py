"""What a day's close costs as the keys it moved grow, whatever PostgreSQL's planner knows.

    python -m bench.close_day                          # 10k and 100k keys a day
    python -m bench.close_day --sizes 10000 --days 3   # smaller

Each size gets a fresh PostgreSQL schema and a ledger server of its own. The statistics are
left as a fresh deployment can have them: the read models' tables are ANALYZEd once while
empty, and autovacuum is off for them, so the planner believes every table empty while it
fills (``--statistics fresh`` ANALYZEs them again just before the timed calls instead).

Then, through the API: top-level resellers (ImportResellers), and for each of ``--days``
past days, orders (ImportOrders) of ``LINES`` lines each, every line from a supplier of its
own, so that each day moves about ``size`` (account, currency, bucket) keys: the suppliers',
the sellers', the platform's and the clearing account's. Timed: GetDayStatement's first page
of the last day while no day is closed (its openings come from every day before it), then
CloseDay of each day in order until the read models have applied it (the next write waits
for that), the first and the last shown, and GetDayStatement's first page of the last.

Each figure is wall seconds, the server's CPU seconds and the rest of the machine's
(PostgreSQL, nearly all of it, plus whatever else runs here); the last lines give each
row's growth from the smallest size to the largest.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from bench.cpu import Meter
from bench.scale import Cost, Platform, per_unit, ratio, stamp
from bench.servers import Schemas, start_ledger, stop
from ledger.config import event_store_env, postgres_connection
from ledger.v1 import common_pb2, finance_pb2, storefront_pb2

SIZES = (10_000, 100_000)
LINES = 19  # supplier lines per order: an order moves LINES + 1 keys of its own
PER_MESSAGE = 200
ZONE = ZoneInfo("Asia/Shanghai")  # the server's default LEDGER_TIMEZONE


def past_days(count: int) -> list[str]:
    """``count`` consecutive days ending the day before yesterday (the platform's zone)."""
    today = datetime.now(ZONE).date()
    return [str(today - timedelta(days=2 + n)) for n in reversed(range(count))]


def at(day: str, seconds: float) -> datetime:
    return datetime.combine(datetime.fromisoformat(day).date(), clock_time(8), ZONE) + timedelta(
        seconds=seconds)


def reseller_messages(count: int, joined: datetime
                      ) -> Iterator[storefront_pb2.ImportResellersRequest]:
    for start in range(0, count, 1000):
        yield storefront_pb2.ImportResellersRequest(members=[
            storefront_pb2.ImportedReseller(reseller_id=f"r{n:06d}", enrolled_at=stamp(joined))
            for n in range(start, min(start + 1000, count))])


def order_messages(day: str, count: int) -> Iterator[storefront_pb2.ImportOrdersRequest]:
    """``count`` orders paid on ``day``, order n by reseller n, its lines from suppliers of
    their own (the same suppliers every day)."""
    for start in range(0, count, PER_MESSAGE):
        yield storefront_pb2.ImportOrdersRequest(orders=[
            storefront_pb2.ImportedOrder(
                order_id=f"{day}-{n}", customer_id=f"c{n}", reseller_id=f"r{n:06d}",
                currency="CNY", payment_id=f"w-{day}-{n}", completed=True,
                paid_at=stamp(at(day, n / 4)),
                lines=[common_pb2.OrderLine(sku=f"sku{j}", category="general", quantity=1,
                                            unit_sale_price=2_000 + j, unit_supply_price=1_000,
                                            supplier_id=f"S{n * LINES + j:07d}")
                       for j in range(LINES)])
            for n in range(start, min(start + PER_MESSAGE, count))])


def stale_statistics(url: str) -> None:
    """ANALYZE the read models' tables while they are empty and keep autovacuum off them."""
    env = event_store_env(url)
    with psycopg.connect(**postgres_connection(env), autocommit=True) as conn:
        schema = sql.Identifier(env["POSTGRES_SCHEMA"])
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE 'proj%%'",
            (env["POSTGRES_SCHEMA"],))]
        for table in tables:
            name = sql.Identifier(table)
            conn.execute(sql.SQL("ALTER TABLE {}.{} SET (autovacuum_enabled = false)")
                         .format(schema, name))
            conn.execute(sql.SQL("ANALYZE {}.{}").format(schema, name))


def analyze(url: str) -> None:
    env = event_store_env(url)
    with psycopg.connect(**postgres_connection(env), autocommit=True) as conn:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(
            sql.Identifier(env["POSTGRES_SCHEMA"], row[0]) for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s",
                (env["POSTGRES_SCHEMA"],)))))


class Closing(Platform):
    def bring_in_resellers(self, count: int, joined: datetime) -> None:
        reply = self.shop.ImportResellers(reseller_messages(count, joined),
                                          metadata=self.shop_md, timeout=3600)
        assert reply.imported == count, list(reply.failures)[:3]
        self.position = reply.receipt.log_position

    def sell_on(self, day: str, count: int) -> None:
        reply = self.shop.ImportOrders(order_messages(day, count), metadata=self.shop_md,
                                       timeout=7200)
        assert reply.imported == count, list(reply.failures)[:3]
        self.position = reply.receipt.log_position

    def close(self, day: str) -> finance_pb2.CloseDayResponse:
        """CloseDay, and the read models' applying the close it recorded (a close's cost
        includes that: the next write waits for it)."""
        reply: finance_pb2.CloseDayResponse = self.finance.CloseDay(
            finance_pb2.CloseDayRequest(idempotency_key=f"close-{day}", day=day),
            metadata=self.finance_md, timeout=3600)
        self.position = reply.receipt.log_position
        self.caught_up()
        return reply

    def first_page(self, day: str) -> finance_pb2.GetDayStatementResponse:
        reply: finance_pb2.GetDayStatementResponse = self.finance.GetDayStatement(
            finance_pb2.GetDayStatementRequest(day=day, min_log_position=self.position),
            metadata=self.finance_md, timeout=3600)
        return reply


def once(pid: int, call: Callable[[], object]) -> Cost:
    meter = Meter(pid)
    started = time.perf_counter()
    call()
    return per_unit(meter, started, 1)


def measure(schemas: Schemas, size: int, days: int, statistics: str) -> tuple[dict[str, Cost],
                                                                             int]:
    url = schemas.url(f"close{size}")
    server, address = start_ledger(url)
    costs: dict[str, Cost] = {}
    try:
        if statistics == "stale":
            stale_statistics(url)
        p = Closing(address, server.pid)
        sellers = size // (LINES + 1)
        names = past_days(days)
        p.bring_in_resellers(sellers, at(names[0], 0) - timedelta(days=3))
        for day in names:
            p.sell_on(day, sellers)
        p.caught_up()
        last = names[-1]
        if statistics == "fresh":
            analyze(url)
        costs["GetDayStatement, first page, open day, no day closed"] = once(
            p.pid, lambda: p.first_page(last))
        closed: dict[str, finance_pb2.CloseDayResponse] = {}
        for n, day in enumerate(names):
            cost = once(p.pid, lambda d=day: closed.setdefault(d, p.close(d)))
            if n == 0:
                costs["CloseDay of the first day (the first close), applied"] = cost
        costs["CloseDay of the last day, applied"] = cost
        costs["GetDayStatement, first page, that day"] = once(p.pid, lambda: p.first_page(last))
        moved = closed[last].statement.moved_lines
        p.channel.close()
    finally:
        stop(server)
    return costs, moved


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.close_day", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES),
                        help="keys moved a day (default: %(default)s)")
    parser.add_argument("--days", type=int, default=3, help="days of sales (default: 3)")
    parser.add_argument("--statistics", choices=("stale", "fresh"), default="stale")
    parser.add_argument("--database-url", default=os.environ.get(
        "LEDGER_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    return parser.parse_args()


def main() -> int:
    args = arguments()
    schemas, results = Schemas(args.database_url), {}
    try:
        for size in args.sizes:
            print(f"{size:,} keys a day over {args.days} days…", flush=True)
            results[size], moved = measure(schemas, size, args.days, args.statistics)
            print(f"  the last day moved {moved:,} lines", flush=True)
    finally:
        schemas.drop()
    print(f"\nseconds (wall / server CPU / the rest CPU), {args.statistics} statistics")
    for size, costs in results.items():
        for name, cost in costs.items():
            print(f"  {size:>9,}  {name}: {cost.wall:.3f} / {cost.server:.3f} / {cost.rest:.3f}")
    if len(results) > 1:
        first, last = min(results), max(results)
        print(f"\ngrowth from {first:,} to {last:,} keys (wall, server CPU)")
        for name in results[first]:
            a, b = results[first][name], results[last][name]
            print(f"  {name}: {ratio(b.wall, a.wall)}, {ratio(b.server, a.server)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
