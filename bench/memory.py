"""Server memory: after a long log, and under steady load.

    python -m bench.memory --events 1000000     # peak RSS after bulk-importing N events
    python -m bench.memory --soak-minutes 10    # RSS every 30 s under steady unary load

The soak keeps a storefront's unary writes going at a fixed number in flight (new orders,
payments, completions, refunds, new resellers: the bench's workload) and samples the
server's resident memory (VmRSS). Every cache in the server is bounded, so once they have
filled (the warm-up) the figure must stay flat: the soak ends with the growth per minute
after warm-up, fitted over the samples.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from bench.loadgen import import_orders, run_flows
from bench.servers import KEY, Schemas, peak_rss_mb, start_ledger, stop
from bench.status import log_position
from bench.workload import build


def rss_mb(pid: int) -> float:
    """Resident memory now (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def soak(url: str, minutes: float, warm_up: float, in_flight: int,
         sample_every: float = 30.0) -> None:
    """Steady unary load for ``minutes``; RSS sampled every ``sample_every`` seconds."""
    server, address = start_ledger(url)
    started = time.monotonic()
    samples: list[tuple[float, float]] = []
    next_sample = 0.0
    commands = 0
    print(f"{'minute':>7} {'commands':>9} {'log':>9} {'RSS MB':>7}", flush=True)
    try:
        round_no = 0
        while (elapsed := time.monotonic() - started) < minutes * 60:
            setup, flows = build(300, prefix=f"s{round_no}-", seed=round_no)
            for group, width in ((setup, 1), (flows, in_flight)):  # sponsors enroll first
                done = asyncio.run(run_flows(address, KEY, group, width))
                assert not done.errors, done.first_error
                commands += done.calls
            round_no += 1
            if elapsed >= next_sample:
                rss = rss_mb(server.pid)
                samples.append((elapsed / 60, rss))
                print(f"{elapsed / 60:7.1f} {commands:9,} "
                      f"{asyncio.run(log_position(address)):9,} {rss:7.0f}", flush=True)
                next_sample += sample_every
        after = [(m, r) for m, r in samples if m >= warm_up]
        print(f"after {warm_up:g} min of warm-up: RSS {min(r for _, r in after):,.0f}–"
              f"{max(r for _, r in after):,.0f} MB, growth {slope(after):+.2f} MB/min "
              f"over {len(after)} samples; {commands:,} commands, peak RSS "
              f"{peak_rss_mb(server.pid):,.0f} MB")
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--soak-minutes", type=float, default=0.0,
                        help="instead: steady unary load for this long, RSS sampled")
    parser.add_argument("--warm-up", type=float, default=3.0,
                        help="soak minutes before the caches have filled (not fitted)")
    parser.add_argument("--in-flight", type=int, default=16, help="soak concurrency")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    schemas = Schemas(args.database_url)
    if args.soak_minutes:
        try:
            soak(schemas.url("soak"), args.soak_minutes, args.warm_up, args.in_flight)
        finally:
            schemas.drop()
        return
    try:
        rss, position = rss_after(schemas.url("memory"), args.events, progress=True)
        print(f"server peak RSS: {rss:,.0f} MB after {position:,} events")
    finally:
        schemas.drop()


def rss_after(url: str, events: int, progress: bool = False) -> tuple[float, int]:
    """A fresh server over ``url`` takes orders by bulk import (with their resellers, sent
    one by one first) until its log holds at least ``events`` entries; (its peak RSS in MB,
    the log's length). Rounds of at most 20,000 orders, fewer for a small ``events``: an
    order with its binding and idempotency record is about four log entries."""
    per_round = min(20_000, max(100, events // 4))
    server, address = start_ledger(url)
    started = time.monotonic()
    try:
        round_no = 0
        while (position := asyncio.run(log_position(address))) < events:
            setup, flows = build(per_round, prefix=f"m{round_no}-", seed=round_no)
            asyncio.run(run_flows(address, KEY, setup, 1))
            asyncio.run(import_orders(address, KEY, flows, per_message=500))
            round_no += 1
            if progress:
                print(f"{position:,} events, peak RSS {peak_rss_mb(server.pid):,.0f} MB, "
                      f"{time.monotonic() - started:,.0f}s", flush=True)
        return peak_rss_mb(server.pid), position
    finally:
        stop(server)


if __name__ == "__main__":
    main()
