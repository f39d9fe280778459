"""Runs the ledger and its baselines on this machine, in one run, and prints the figures.

    python -m bench                 # short mode: under a minute, shows nothing broke
    python -m bench --full          # full mode: the figures the README reports

Against PostgreSQL (LEDGER_BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/test),
each run in fresh schemas that are dropped afterwards. The ledger runs as its own process
(`ledger serve`), the load generator in this one; the do-nothing server (baseline A) likewise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable
from typing import Any

from bench import audit_rates, audit_verify, baseline_es, ceilings, memory, observability, targets
from bench.cpu import Meter, Split, measured
from bench.loadgen import Result, import_orders, run_flows
from bench.servers import (
    AUDIT_KEY_FILE,
    BIN,
    KEY,
    Schemas,
    free_port,
    peak_rss_mb,
    rebuild_rate,
    start_ledger,
    stop,
    wait_port,
)
from bench.status import caught_up, lag_sampler, log_position
from bench.targets import print_targets
from bench.workload import build
from ledger.config import event_store_env, redact

LEVELS = (1, 16, 64)
MODES = {
    # orders per in-flight level, baseline B orders, bulk-imported orders, paired rounds,
    # entries of the synthetic export `ledger audit verify` checks
    "short": {"orders": 120, "plain": 150, "bulk": 2_000, "rounds": 1, "verify": 20_000},
    "full": {"orders": 1_500, "plain": 1_500, "bulk": 40_000, "rounds": 3,
             "verify": 200_000},
}


def bulk(address: str, orders: int, tag: str, pids: tuple[int, ...], streams: int = 1,
         url: str = "") -> dict[str, Any]:
    """The bulk path: log entries per second written, and per second until the read models
    had applied them too; where the machine's CPU went per order; and, given the store's
    ``url``, PostgreSQL alone inserting the same entries again (the ceiling)."""
    setup, flows = build(orders, prefix=f"{tag}-", seed=99)
    asyncio.run(run_flows(address, KEY, setup, 1))
    before = asyncio.run(log_position(address))
    started = time.perf_counter()
    meter = Meter(*pids)
    sent, imported, seconds, after = asyncio.run(
        import_orders(address, KEY, flows, per_message=500, streams=streams))
    asyncio.run(caught_up(address, after))
    projected = time.perf_counter() - started
    split = meter.read()
    entries = after - before
    ceiling = (ceilings.event_inserts(url, before + 1, after, round(500 * entries / imported))
               if url and imported else None)
    return {"orders": sent, "imported": imported, "events": entries / seconds,
            "projected": entries / projected, "split": split, "ceiling": ceiling,
            "entries_per_order": entries / max(imported, 1)}


async def with_lag(address: str, load: Awaitable[Result]) -> tuple[Result, int]:
    """Runs the load while sampling the read models' lag; (result, worst lag seen)."""
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(lag_sampler(address, stop_sampling))
    result = await load
    stop_sampling.set()
    worst_lag, _ = await sampler
    return result, worst_lag


async def measure_ledger(address: str, orders: int, tag: str, pid: int
                         ) -> list[dict[str, Any]]:
    rows = []
    for level in LEVELS:
        setup, flows = build(orders, prefix=f"{tag}{level}-", seed=level)
        await run_flows(address, KEY, setup, 1)
        before = await log_position(address)
        (result, worst_lag), cpu = await measured((pid,), with_lag(
            address, run_flows(address, KEY, flows, level)))
        after = await log_position(address)
        rows.append(row(f"ledger, {level} in flight", result,
                        events=(after - before) / result.seconds, lag=worst_lag, cpu=cpu))
    return rows


def row(name: str, result: Result, events: float | None = None,
        lag: int | None = None, cpu: Split | None = None) -> dict[str, Any]:
    return {"name": name, "commands": result.rate, "events": events,
            "p50": result.percentile(50) * 1000, "p99": result.percentile(99) * 1000,
            "max": max(result.latencies, default=0) * 1000, "errors": result.errors,
            "lag": lag, "first_error": result.first_error,
            "split": cpu, "calls": result.calls}


def start_projector(url: str) -> subprocess.Popen[bytes]:
    """`ledger project`: keeps the read models from its own process."""
    return subprocess.Popen([str(BIN / "ledger"), "project"],
                            env={**os.environ, "LEDGER_DATABASE_URL": url,
                                 "LEDGER_LOG_LEVEL": "warning"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_null() -> tuple[subprocess.Popen[bytes], str]:
    """Baseline A's do-nothing server, once it listens; (process, address)."""
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen([sys.executable, "-m", "bench.null_server", "--port",
                                address.rsplit(":", 1)[1]])
    try:
        wait_port(address)
    except BaseException:
        stop(process)
        raise
    return process, address


def plain_env(schemas: Schemas, name: str) -> dict[str, str]:
    """Baseline B's store: a fresh schema, the library's own recorder as shipped."""
    from ledger.bootstrap import postgres_setup_lock

    env = event_store_env(schemas.url(name))
    env.pop("APPLICATION_RECORDER_TOPIC")
    with postgres_setup_lock(env):  # creates the schema
        pass
    return {**env, "CREATE_TABLE": "y"}


def paired_rounds(schemas: Schemas, orders: int, plain_orders: int, rounds: int
                  ) -> list[tuple[float, float, float]]:
    """The ratios again, from rounds in which the ledger (one server, read models inline),
    baseline A and baseline B run back to back at 64 in flight: on a shared machine whose
    speed drifts by the minute, each round's three runs see about the same machine.
    Returns (ledger, A, B) commands/s per round."""
    env = plain_env(schemas, "rounds_plain")
    server, address = start_ledger(schemas.url("rounds"))
    out = []
    try:
        null, null_address = start_null()
        try:
            for n in range(rounds):
                setup, flows = build(orders, prefix=f"round{n}-", seed=100 + n)
                asyncio.run(run_flows(address, KEY, setup, 1))
                ledger = asyncio.run(run_flows(address, KEY, flows, 64))
                nothing = asyncio.run(run_flows(null_address, KEY, flows, 64))
                plain_setup, plain_flows = build(plain_orders, prefix=f"round{n}-b-",
                                                 seed=200 + n)
                commands, _, seconds, _ = baseline_es.run(env, plain_setup, plain_flows)
                out.append((ledger.rate, nothing.rate, commands / seconds))
        finally:
            stop(null)
    finally:
        stop(server)
    return out


def spread(values: list[float]) -> str:
    ordered = sorted(values)
    median = ordered[len(ordered) // 2]
    return f"{median:.2f}" + (f" ({ordered[0]:.2f}–{ordered[-1]:.2f})" if len(values) > 1
                              else "")


def fmt(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    """One row per run. The CPU columns are milliseconds per command: the processes under
    test (the server and its workers, and the projector; baseline A's server; baseline B's
    own process), the load generator, and the rest of the machine (PostgreSQL); "cores" is
    how busy the two cores were."""
    print(f"| {'run':38} | {'commands/s':>10} | {'events/s':>9} | {'p50 ms':>7} | "
          f"{'p99 ms':>7} | {'max ms':>7} | {'max lag':>7} | {'CPU ms/cmd':>10} | "
          f"{'client ms':>9} | {'rest ms':>7} | {'cores':>5} | {'errors':>6} |")
    print(f"|{'-' * 40}|{'-' * 12}|{'-' * 11}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 9}|"
          f"{'-' * 12}|{'-' * 11}|{'-' * 9}|{'-' * 7}|{'-' * 8}|")
    for r in rows:
        split: Split | None = r.get("split")
        tested, client, rest = split.per(r["calls"]) if split else (None, None, None)
        print(f"| {r['name']:38} | {fmt(r['commands']):>10} | {fmt(r['events']):>9} | "
              f"{fmt(r['p50'], 1):>7} | {fmt(r['p99'], 1):>7} | {fmt(r['max'], 1):>7} | "
              f"{fmt(r['lag']):>7} | {fmt(tested, 2):>10} | "
              f"{fmt(client, 2):>9} | "
              f"{fmt(rest, 2):>7} | {fmt(split.cores_busy if split else None, 2):>5} | "
              f"{fmt(r['errors']):>6} |")


def machine_per_command(r: dict[str, Any]) -> str:
    split: Split = r["split"]
    tested, client, rest = split.per(r["calls"])
    return (f"{tested + client + rest:.2f} ms (under test {tested:.2f}, load generator "
            f"{client:.2f}, PostgreSQL and the rest {rest:.2f}; {split.cores_busy:.2f} "
            "cores busy)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the full mode (minutes)")
    parser.add_argument("--rss-events", type=int, default=0, help=(
        "also: a fresh server bulk-imports until its log holds this many entries, and its "
        "peak RSS is the memory target's figure (default: the run's own log, shorter)"))
    parser.add_argument("--database-url", default=os.environ.get(
        "LEDGER_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    mode = "full" if args.full else "short"
    size = MODES[mode]
    schemas = Schemas(args.database_url)
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    print(f"# ledger benchmark, {mode} mode, {os.cpu_count()} cores, PostgreSQL at "
          f"{redact(args.database_url)}", flush=True)
    try:
        # The ledger over gRPC.
        url = schemas.url("ledger")
        server, address = start_ledger(url)
        try:
            rows += asyncio.run(measure_ledger(address, size["orders"], "g", server.pid))
            one_bulk = bulk(address, size["bulk"], "bulk", (server.pid,), url=url)
            rss = peak_rss_mb(server.pid)
            streamed, stream_rate = audit_rates.stream_rate(address)
        finally:
            stop(server)
        rebuild, log_size, rebuild_split = rebuild_rate(url)
        rebuilt = targets.Rebuild(rebuild, log_size, ceilings.read_model_copies(url))
        checked, check_rate = audit_rates.check_rate(url, AUDIT_KEY_FILE)

        # As deployed (docker/compose.yaml): two server processes sharing the port
        # (LEDGER_WORKERS=2) and the read models kept by a separate `ledger project` process.
        url = schemas.url("workers")
        server, address = start_ledger(url, {"LEDGER_WORKERS": "2",
                                             "LEDGER_PROJECTIONS": "external"})
        projector = start_projector(url)
        try:
            setup, flows = build(size["orders"], prefix="w-", seed=64)
            asyncio.run(run_flows(address, KEY, setup, 1))
            before = asyncio.run(log_position(address))
            pids = (server.pid, projector.pid)
            (result, worst_lag), cpu = asyncio.run(measured(pids, with_lag(address, run_flows(
                address, KEY, flows, 64, connections=32))))
            after = asyncio.run(log_position(address))
            rows.append(row("ledger, 2 servers + projector, 64", result,
                            events=(after - before) / result.seconds, lag=worst_lag, cpu=cpu))
            two_bulk = bulk(address, size["bulk"], "wbulk", pids, streams=2)
        finally:
            stop(server)
            stop(projector)

        # Baseline A: a do-nothing server, same messages, same load generator.
        null, null_address = start_null()
        try:
            for level in LEVELS:
                _, flows = build(size["orders"], prefix=f"a{level}-", seed=level)
                result, cpu = asyncio.run(measured((null.pid,), run_flows(
                    null_address, KEY, flows, level)))
                rows.append(row(f"baseline A (do-nothing), {level} in flight", result,
                                cpu=cpu))
        finally:
            stop(null)

        # Baseline B: plain eventsourcing, one save() per command.
        plain_setup, plain_flows = build(size["plain"], prefix="b-", seed=64)
        commands, events, seconds, split = baseline_es.run(plain_env(schemas, "plain"),
                                                           plain_setup, plain_flows)
        rows.append({"name": "baseline B (eventsourcing, 1 save/cmd)",
                     "commands": commands / seconds, "events": events / seconds,
                     "p50": None, "p99": None, "max": None, "errors": 0, "lag": None,
                     "split": split, "calls": commands})
        rounds = paired_rounds(schemas, size["orders"], size["plain"], size["rounds"])
        # Request logs and metrics on and off, back to back (bench/observability.py).
        observed = observability.measure(start_ledger, stop, schemas.url, KEY, size["orders"],
                                         size["rounds"])
        rss_at = (memory.rss_after(schemas.url("memory"), args.rss_events)
                  if args.rss_events else (rss, log_size))
    finally:
        schemas.drop()

    print()
    print_table(rows)
    ledger64 = next(r for r in rows if r["name"] == "ledger, 64 in flight")
    null64 = next(r for r in rows if r["name"] == "baseline A (do-nothing), 64 in flight")
    plain = rows[-1]
    print()
    for name, b in (("1 server, read models inline, 1 stream", one_bulk),
                    ("as deployed (2 servers + projector), 2 streams", two_bulk)):
        tested, client, rest = b["split"].per(b["imported"])
        print(f"bulk import (ImportOrders, 500 orders/message), {name}: "
              f"{b['imported']}/{b['orders']} orders, {b['events']:,.0f} events/s written, "
              f"{b['projected']:,.0f} events/s until the read models had them; "
              f"{b['entries_per_order']:.1f} log entries per order; CPU ms per order: "
              f"ledger {tested:.2f}, load generator {client:.2f}, PostgreSQL and the rest "
              f"{rest:.2f}")
    ceiling = one_bulk["ceiling"]
    if ceiling is not None:
        print(f"bulk ceiling (PostgreSQL alone inserting the same {ceiling.rows:,} log "
              f"entries again, as the recorder does, nothing else deciding): "
              f"{ceiling.rate:,.0f} events/s, {ceiling.cpu_us_per_row:.1f} µs of PostgreSQL "
              f"CPU per entry")
    rebuild_us = [x / max(log_size, 1) * 1e6 for x in (rebuild_split.tested,
                                                       rebuild_split.rest)]
    print(f"projection rebuild from empty: {log_size:,} events at {rebuild:,.0f} events/s; "
          f"CPU µs per log entry: rebuild process {rebuild_us[0]:.1f} (start-up included), "
          f"PostgreSQL and the rest {rebuild_us[1]:.1f}")
    print(f"rebuild ceiling (PostgreSQL alone writing the rebuild's "
          f"{rebuilt.ceiling.rows:,} read-model rows by binary COPY into fresh tables, their "
          f"indexes built once loaded): {rebuilt.ceiling.rate:,.0f} rows/s, "
          f"{rebuilt.ceiling.cpu_us_per_row:.1f} µs of PostgreSQL CPU per row; per log "
          f"entry {rebuilt.ceiling_rate:,.0f} entries/s; rebuild/ceiling "
          f"{rebuild / rebuilt.ceiling_rate:.2f}")
    print(f"server peak RSS: {rss:,.0f} MB after {log_size:,} events")
    if args.rss_events:
        print(f"server peak RSS, bulk import alone (--rss-events): {rss_at[0]:,.0f} MB after "
              f"{rss_at[1]:,} events")
    print(f"machine CPU per command at 64 in flight: ledger {machine_per_command(ledger64)}; "
          f"baseline A {machine_per_command(null64)}; baseline B "
          f"{machine_per_command(plain)}")
    ratio_a = ledger64["commands"] / null64["commands"]
    print(f"ratio ledger/baseline A at 64 in flight: {ratio_a:.2f}")
    two = next(r for r in rows if r["name"].startswith("ledger, 2 servers"))
    print(f"ratio ledger as deployed (2 servers + projector)/baseline A at 64 in flight: "
          f"{two['commands'] / null64['commands']:.2f}")
    print(f"ratio ledger/baseline B (64 in flight vs one save per command): "
          f"{ledger64['commands'] / plain['commands']:.2f}; as deployed: "
          f"{two['commands'] / plain['commands']:.2f}")
    print(f"paired rounds at 64 in flight (ledger, A, B back to back, {len(rounds)} rounds; "
          f"median (lowest–highest)): ledger/baseline A "
          f"{spread([r[0] / r[1] for r in rounds])}, ledger/baseline B "
          f"{spread([r[0] / r[2] for r in rounds])}; commands/s ledger "
          f"{', '.join(f'{r[0]:,.0f}' for r in rounds)}, A "
          f"{', '.join(f'{r[1]:,.0f}' for r in rounds)}, B "
          f"{', '.join(f'{r[2]:,.0f}' for r in rounds)}")
    print(observability.summary(observed))
    hashing = audit_rates.hashing_us_per_entry()
    tested_ms = ledger64["split"].per(ledger64["calls"])[0]
    entries_per_command = ledger64["events"] / ledger64["commands"]
    print(f"audit StreamEvents: {streamed:,} entries at {stream_rate:,.0f} entries/s; the "
          f"start-up check over the same log: {checked:,} entries at {check_rate:,.0f} "
          "entries/s")
    print(f"audit tree hashing on the write path: {hashing:.1f} µs per entry, "
          f"{entries_per_command:.1f} entries per command: "
          f"{hashing * entries_per_command / 10 / tested_ms:.1f}% of the server's "
          f"{tested_ms:.2f} ms of CPU per command at 64 in flight")
    # Offline: no database, no server, one process (bench/audit_verify.py).
    seconds, rate, file_size = audit_verify.measure(size["verify"])
    print(f"audit verify (a synthetic export of {size['verify']:,} entries, "
          f"{file_size / 2**20:,.0f} MiB, a signed head every {audit_verify.HEAD_EVERY:,}): "
          f"{rate:,.0f} entries/s ({seconds:.2f}s)")
    print()
    print_targets([*targets.unary(ledger64, null64, rounds),
                   *([targets.bulk(one_bulk["events"], ceiling)] if ceiling else []),
                   targets.rebuild(rebuilt), targets.memory(*rss_at)])
    print(f"took {time.monotonic() - started:.0f}s")
    failed = [r for r in rows if r["errors"]] + [
        {"name": "request logs + metrics on/off", "first_error": "errors in the load"}
        for r in observed if r.on.errors or r.off.errors]
    for r in failed:
        print(f"errors in {r['name']}: {r['first_error']}", file=sys.stderr)
    short = [b for b in (one_bulk, two_bulk) if b["imported"] != b["orders"]]
    return 1 if failed or short else 0


if __name__ == "__main__":
    sys.exit(main())
