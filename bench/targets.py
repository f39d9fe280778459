"""The targets of issue 18, each a ratio between a ledger figure and a reference measured in
the same run of ``python -m bench``: the do-nothing gRPC server (baseline A), PostgreSQL
alone writing the import's log entries or the rebuild's read-model rows, a memory limit.

A ratio against a reference from the same minutes holds still on a machine whose speed
moves by a third between runs; the absolute figures do not. The table is what the README
reports and what the suite checks is printed whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.ceilings import Ceiling

TITLE = "targets of issue 18, each against a reference measured in this run"
RSS_EVENTS = 1_000_000  # the log's length the memory target is set at
RSS_LIMIT_MB = 400.0


@dataclass(frozen=True)
class Target:
    """One row: the ledger's figure, the reference's, their ratio and the bound it must
    meet (at least ``bound`` if ``at_least``, else at most)."""

    name: str
    ledger: str
    reference: str
    ratio: float
    bound: float
    at_least: bool
    note: str = ""  # said in the "met" column after the verdict

    @property
    def met(self) -> bool:
        return self.ratio >= self.bound if self.at_least else self.ratio <= self.bound

    def cells(self) -> tuple[str, ...]:
        verdict = ("met" if self.met else "not met") + (f", {self.note}" if self.note else "")
        return (self.name, self.ledger, self.reference, f"{self.ratio:.2f}",
                f"{'≥' if self.at_least else '≤'} {self.bound:.2f}", verdict)


@dataclass(frozen=True)
class Rebuild:
    """A rebuild from empty and its ceiling, over the same log."""

    rate: float  # log positions per second
    entries: int  # the log's length
    ceiling: Ceiling  # PostgreSQL alone writing the rows the rebuild wrote

    @property
    def ceiling_rate(self) -> float:
        """The ceiling in the rebuild's unit: log entries per second, had writing the read
        models' rows been all a rebuild costs."""
        return self.entries / max(self.ceiling.seconds, 1e-9)


def unary(ledger64: dict[str, Any], null64: dict[str, Any],
          rounds: list[tuple[float, float, float]]) -> list[Target]:
    """Throughput, server CPU per call and p99 at 64 in flight, against baseline A."""
    cpu, cpu_a = (r["split"].per(r["calls"])[0] for r in (ledger64, null64))
    ratios = sorted(r[0] / r[1] for r in rounds)
    median = ratios[len(ratios) // 2]
    return [
        Target("unary at 64 in flight", f"{ledger64['commands']:,.0f} commands/s",
               f"do-nothing gRPC {null64['commands']:,.0f} calls/s",
               ledger64["commands"] / null64["commands"], 0.5, True),
        Target(f"unary at 64 in flight, paired rounds (median of {len(rounds)})",
               ", ".join(f"{r[0]:,.0f}" for r in rounds) + " commands/s",
               "do-nothing gRPC " + ", ".join(f"{r[1]:,.0f}" for r in rounds) + " calls/s",
               median, 0.5, True),
        Target("server CPU per command at 64 in flight", f"{cpu:.2f} ms",
               f"do-nothing gRPC {cpu_a:.2f} ms per call", cpu / max(cpu_a, 1e-9), 2.0,
               False),
        Target("p99 at 64 in flight", f"{ledger64['p99']:,.1f} ms",
               f"do-nothing gRPC {null64['p99']:,.1f} ms",
               ledger64["p99"] / max(null64["p99"], 1e-9), 2.0, False),
    ]


def bulk(events_per_second: float, ceiling: Ceiling) -> Target:
    return Target("bulk import", f"{events_per_second:,.0f} events/s",
                  f"PostgreSQL alone re-inserting its {ceiling.rows:,} entries: "
                  f"{ceiling.rate:,.0f} events/s",
                  events_per_second / ceiling.rate, 0.4, True)


def rebuild(done: Rebuild) -> Target:
    per_entry = done.ceiling.rows / max(done.entries, 1)
    return Target("rebuild", f"{done.rate:,.0f} events/s",
                  f"PostgreSQL alone writing its {done.ceiling.rows:,} read-model rows "
                  f"({per_entry:.1f} per entry) by binary COPY: "
                  f"{done.ceiling_rate:,.0f} entries/s",
                  done.rate / done.ceiling_rate, 0.5, True)


def memory(rss_mb: float, events: int) -> Target:
    """Server peak RSS against the limit; said plainly when the log was shorter than the
    target's million entries."""
    short = events < RSS_EVENTS
    return Target(f"server RSS after {RSS_EVENTS:,} events",
                  f"{rss_mb:,.0f} MB after {events:,} events",
                  f"the limit, {RSS_LIMIT_MB:,.0f} MB", rss_mb / RSS_LIMIT_MB, 1.0, False,
                  f"at {events:,} events only (--rss-events {RSS_EVENTS})" if short else "")


def print_targets(targets: list[Target]) -> None:
    """A markdown table, columns padded to their widest cell."""
    header = ("target", "ledger", "reference, same run", "ratio", "target ratio", "met")
    table = [header, *(t.cells() for t in targets)]
    widths = [max(len(row[n]) for row in table) for n in range(len(header))]
    print(f"{TITLE}:")
    for n, row in enumerate(table):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
