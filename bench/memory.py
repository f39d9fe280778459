"""Server memory after a long log: bulk-imports orders until the log holds N events, then
reports the server's peak RSS (VmHWM) and the read models' lag.

    python -m bench.memory --events 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.__main__ import KEY, Schemas, log_position, peak_rss_mb, start_ledger, stop
from bench.loadgen import import_orders, run_flows
from bench.workload import build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    schemas = Schemas(args.database_url)
    server, address = start_ledger(schemas.url("memory"))
    started = time.monotonic()
    try:
        round_no = 0
        while (position := asyncio.run(log_position(address))) < args.events:
            setup, flows = build(20_000, prefix=f"m{round_no}-", seed=round_no)
            asyncio.run(run_flows(address, KEY, setup, 1))
            asyncio.run(import_orders(address, KEY, flows, per_message=500))
            round_no += 1
            print(f"{position:,} events, peak RSS {peak_rss_mb(server.pid):,.0f} MB, "
                  f"{time.monotonic() - started:,.0f}s", flush=True)
        print(f"server peak RSS: {peak_rss_mb(server.pid):,.0f} MB after {position:,} events")
    finally:
        stop(server)
        schemas.drop()


if __name__ == "__main__":
    main()
