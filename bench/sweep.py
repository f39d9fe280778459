"""Tunes group commit: the ledger at 64 in flight under each batch size and wait bound.

    python -m bench.sweep

Prints commands/s and latencies per setting; README.md records the choice of defaults.
"""

from __future__ import annotations

import asyncio

from bench.__main__ import KEY, Schemas, row, start_ledger, stop
from bench.loadgen import run_flows
from bench.workload import build

SETTINGS = [(1, 0), (20, 0), (200, 0), (1000, 0), (200, 1), (200, 5)]


def main() -> None:
    schemas = Schemas("postgresql://postgres@127.0.0.1:5432/test")
    print(f"| {'LEDGER_BATCH_MAX':>16} | {'LEDGER_BATCH_WAIT_MS':>20} | {'commands/s':>10} | "
          f"{'p50 ms':>7} | {'p99 ms':>7} |")
    print(f"|{'-' * 18}|{'-' * 22}|{'-' * 12}|{'-' * 9}|{'-' * 9}|")
    try:
        for batch_max, wait_ms in SETTINGS:
            server, address = start_ledger(schemas.url("sweep"), {
                "LEDGER_BATCH_MAX": str(batch_max), "LEDGER_BATCH_WAIT_MS": str(wait_ms)})
            try:
                setup, flows = build(600, prefix="s-", seed=7)
                asyncio.run(run_flows(address, KEY, setup, 1))
                result = row("", asyncio.run(run_flows(address, KEY, flows, 64)))
            finally:
                stop(server)
            print(f"| {batch_max:>16} | {wait_ms:>20} | {result['commands']:>10,.0f} | "
                  f"{result['p50']:>7.1f} | {result['p99']:>7.1f} |", flush=True)
    finally:
        schemas.drop()


if __name__ == "__main__":
    main()
