"""What request logs and metrics cost: the ledger's unary throughput with both on and with
both off, in the same run, on the same machine.

    python -m bench.observability --orders 1500 --rounds 3

"On" is a server as run in production: LEDGER_LOG_FORMAT=json at LEDGER_LOG_LEVEL=info (a
line per call, written to a file) and LEDGER_METRICS_LISTEN set (every call counted and
timed), scraped once a second meanwhile. "Off" logs warnings only (the call lines are
filtered before they are rendered) and has no metrics address (calls are not counted).
Each round runs both, one after the other, each on a fresh schema with the same workload at
64 in flight, the order alternating between rounds so that the machine's drift falls on
both; ``python -m bench`` runs one short round.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

from bench.cpu import measured
from bench.loadgen import run_flows
from bench.servers import free_port
from bench.workload import build

IN_FLIGHT = 64
Start = Callable[[str, dict[str, str], Path | None], tuple[Popen[bytes], str]]


@dataclass
class Run:
    commands_per_second: float
    server_ms_per_command: float
    errors: int


@dataclass
class Round:
    on: Run
    off: Run

    @property
    def throughput_ratio(self) -> float:
        """On's commands per second over off's: 1.0 is free, 0.9 a 10% cost."""
        return self.on.commands_per_second / self.off.commands_per_second

    @property
    def cpu_ratio(self) -> float:
        """On's server CPU per command over off's."""
        return self.on.server_ms_per_command / self.off.server_ms_per_command


def scraping(address: str, stop: threading.Event) -> threading.Thread:
    """Scrapes ``address`` once a second until ``stop``, as Prometheus would."""

    def run() -> None:
        while not stop.wait(1.0):
            try:
                with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as reply:
                    reply.read()
            except OSError:
                pass

    thread = threading.Thread(target=run, name="scraper", daemon=True)
    thread.start()
    return thread


def one_run(
    start: Start,
    stop: Callable[[Popen[bytes]], None],
    url: str,
    key: str,
    orders: int,
    tag: str,
    on: bool,
    folder: Path,
) -> Run:
    metrics_address = f"127.0.0.1:{free_port()}"
    env = (
        {
            "LEDGER_LOG_LEVEL": "info",
            "LEDGER_LOG_FORMAT": "json",
            "LEDGER_METRICS_LISTEN": metrics_address,
        }
        if on
        else {"LEDGER_LOG_LEVEL": "warning"}
    )
    server, address = start(url, env, folder / f"{tag}.log")
    done = threading.Event()
    try:
        setup, flows = build(orders, prefix=f"{tag}-", seed=7)
        asyncio.run(run_flows(address, key, setup, 1))
        scraper = scraping(metrics_address, done) if on else None
        result, split = asyncio.run(
            measured((server.pid,), run_flows(address, key, flows, IN_FLIGHT))
        )
        done.set()
        if scraper is not None:
            scraper.join()
    finally:
        done.set()
        stop(server)
    return Run(result.rate, split.per(result.calls)[0], result.errors)


def measure(
    start: Start,
    stop: Callable[[Popen[bytes]], None],
    url: Callable[[str], str],
    key: str,
    orders: int,
    rounds: int,
) -> list[Round]:
    """``rounds`` rounds of a run with request logs and metrics on and one with them off;
    ``url(name)`` gives a fresh store for each run."""
    out = []
    with tempfile.TemporaryDirectory(prefix="ledger-bench-logs-") as folder:
        for n in range(rounds):
            runs: dict[bool, Run] = {}
            for on in (True, False) if n % 2 == 0 else (False, True):
                tag = f"obs{n}{'on' if on else 'off'}"
                runs[on] = one_run(start, stop, url(tag), key, orders, tag, on, Path(folder))
            out.append(Round(runs[True], runs[False]))
    return out


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def summary(rounds: list[Round]) -> str:
    throughput = [r.throughput_ratio for r in rounds]
    cpu = [r.cpu_ratio for r in rounds]
    return (
        f"request logs + metrics on/off at {IN_FLIGHT} in flight ({len(rounds)} rounds, "
        f"median): throughput ratio {median(throughput):.3f} "
        f"({min(throughput):.3f}–{max(throughput):.3f}), a cost of "
        f"{(1 - median(throughput)) * 100:.1f}%; server CPU per command ratio "
        f"{median(cpu):.3f}; commands/s on "
        f"{', '.join(f'{r.on.commands_per_second:,.0f}' for r in rounds)}, off "
        f"{', '.join(f'{r.off.commands_per_second:,.0f}' for r in rounds)}"
    )


def main() -> int:
    from bench.servers import KEY, Schemas, start_ledger
    from bench.servers import stop as stop_server

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "LEDGER_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    schemas = Schemas(args.database_url)
    try:
        rounds = measure(start_ledger, stop_server, schemas.url, KEY, args.orders, args.rounds)
    finally:
        schemas.drop()
    for n, r in enumerate(rounds):
        print(
            f"round {n}: on {r.on.commands_per_second:,.0f} commands/s "
            f"({r.on.server_ms_per_command:.2f} server CPU ms/cmd), off "
            f"{r.off.commands_per_second:,.0f} ({r.off.server_ms_per_command:.2f}); "
            f"errors {r.on.errors + r.off.errors}"
        )
    print(summary(rounds))
    return 1 if any(r.on.errors or r.off.errors for r in rounds) else 0


if __name__ == "__main__":
    raise SystemExit(main())
