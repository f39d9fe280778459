"""Where the machine's CPU goes while a run is measured: the processes under test, the load
generator (this process), and the rest of the machine (PostgreSQL, nearly all of it).

On two cores shared by the server, the load generator and the database, a ratio between two
runs that both keep the machine busy is a ratio of CPU per command: a run can only go faster
by spending less of the machine on each command. Splitting that CPU by who spent it says
what is in the way, and how far any one part could take the figure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")


def stat_fields(proc: Path) -> list[str]:
    """A process's /proc/<pid>/stat after its name: [state, parent pid, …]."""
    return (proc / "stat").read_text().rsplit(")", 1)[1].split()


def ticks_used(fields: list[str]) -> int:
    return int(fields[11]) + int(fields[12])  # utime, stime


def one_process_cpu(pid: int) -> float:
    """CPU time (user + system) one process has used so far."""
    return ticks_used(stat_fields(Path(f"/proc/{pid}"))) / TICK


def process_cpu(*pids: int) -> float:
    """CPU time (user + system) used so far by these processes and their children (the
    workers of LEDGER_WORKERS). Steadier than throughput on a shared machine: it does not
    count time spent waiting for a core someone else has."""
    wanted = set(pids)
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = stat_fields(entry)
        except OSError:
            continue  # gone meanwhile
        if int(entry.name) in wanted or int(fields[1]) in wanted:
            ticks += ticks_used(fields)
    return ticks / TICK


def machine_cpu() -> float:
    """CPU seconds every core has spent busy since boot (all but idle and I/O wait)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


def own_cpu() -> float:
    """This process's CPU seconds, every thread's (the load generator's)."""
    return time.process_time()


@dataclass(frozen=True)
class Split:
    """CPU seconds spent during one measured run, by whom, and over how long."""

    tested: float  # the processes under test
    client: float  # this process: the load generator, or baseline B itself
    rest: float  # everything else on the machine: PostgreSQL, nearly all of it
    seconds: float

    def per(self, count: int) -> tuple[float, float, float]:
        """(tested, client, rest) in milliseconds per one of ``count`` operations."""
        n = max(count, 1)
        return self.tested / n * 1000, self.client / n * 1000, self.rest / n * 1000

    @property
    def cores_busy(self) -> float:
        return (self.tested + self.client + self.rest) / max(self.seconds, 1e-9)


class Meter:
    """Started before a run and read after it."""

    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self._tested = process_cpu(*pids) if pids else 0.0
        self._client = own_cpu()
        self._machine = machine_cpu()
        self._started = time.perf_counter()

    def read(self) -> Split:
        tested = (process_cpu(*self.pids) - self._tested) if self.pids else 0.0
        client = own_cpu() - self._client
        machine = machine_cpu() - self._machine
        return Split(tested, client, max(0.0, machine - tested - client),
                     time.perf_counter() - self._started)


async def measured(pids: tuple[int, ...], load: Awaitable[Any]) -> tuple[Any, Split]:
    """Runs the load; (its result, where the machine's CPU went meanwhile)."""
    meter = Meter(*pids)
    result = await load
    return result, meter.read()
