"""What `grpc.health.v1` answers: SERVING only while the ledger can do its work.

A health check that always said SERVING kept a load balancer sending calls to a server whose
database had gone away, and whose read models had stopped. The server now probes, every
``interval`` seconds, the two things its calls need: the store (it must answer) and the read
models (while the log grows, they must follow it). NOT_SERVING while either fails; SERVING
again as soon as both hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import structlog
from grpc_health.v1 import health, health_pb2

from ledger.outages import Outage

log = structlog.get_logger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Progress:
    """Whether the read models follow the log: stalled when the log is ahead of them and
    they have not moved for longer than ``max_stall`` seconds. Lag alone is no fault (a
    burst of writes, a catch-up after start), standing still behind a growing log is."""

    max_stall: float
    processed: int = -1
    moved_at: float = 0.0

    def stalled(self, head: int, processed: int, now: float) -> bool:
        if processed != self.processed:
            self.processed, self.moved_at = processed, now
        return head > processed and now - self.moved_at > self.max_stall


Probe = Callable[[], tuple[int, int]]
# A probe that has not answered in this long counts as failed. Generous: a busy server's
# probe waits its turn for the interpreter, and a false alarm turns callers away.
PROBE_TIMEOUT = 5.0


class HealthWatch:
    """Probes the store and the read models (``probe`` returns the log's head and the
    position the read models have applied) and sets every service's health from it.

    The probe runs on a thread of its own, one at a time: during an outage a probe can hang
    until its connection times out, and it must neither pile up threads nor hold up the
    threads that serve calls. A probe still running after ``PROBE_TIMEOUT`` counts as
    failed."""

    def __init__(self, servicer: health.aio.HealthServicer, names: Iterable[str],
                 probe: Probe, *, interval: float, max_stall: float) -> None:
        assert interval > 0 and max_stall > 0
        self.servicer = servicer
        self.names = tuple(names)
        self.probe = probe
        self.interval = interval
        self.progress = Progress(max_stall)
        self.status = SERVING
        self.reason = ""
        self.unreachable = False
        self.outage = Outage("reaching the store (health probe)", logger=log,
                             operation="health")
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="health-probe")
        self._pending: Future[tuple[int, int]] | None = None

    def store_down(self) -> bool:
        """Whether the last probe found the store unreachable: it refused the connection or
        lost it. A probe that was merely slow (a busy machine) does not count: turning every
        call away on a false alarm would be worse than letting them wait."""
        return self.unreachable

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval)

    async def check(self) -> int:
        """One probe; sets and returns the status."""
        if self._pending is None or self._pending.done():
            self._pending = self._executor.submit(self.probe)
        try:
            head, processed = await asyncio.wait_for(asyncio.wrap_future(self._pending),
                                                     timeout=PROBE_TIMEOUT)
        except TimeoutError:  # slow, not refused: calls may still get through
            self.outage.failed(TimeoutError(f"no answer in {PROBE_TIMEOUT:g} s"))
            return await self._set(NOT_SERVING, "the store does not answer in time")
        except Exception as error:  # refused, or the connection lost: unreachable
            self.outage.failed(error)
            self.unreachable = True
            return await self._set(NOT_SERVING, "the store cannot be reached")
        self.unreachable = False
        self.outage.succeeded()
        if self.progress.stalled(head, processed, time.monotonic()):
            return await self._set(
                NOT_SERVING, f"the read models stand at {processed} while the log is at "
                             f"{head}, for over {self.progress.max_stall:g} s")
        return await self._set(SERVING, "")

    async def _set(self, status: int, reason: str) -> int:
        if status != self.status:
            (log.info if status == SERVING else log.warning)(
                "health changed", status=health_pb2.HealthCheckResponse.ServingStatus.Name(
                    status), reason=reason or "the store answers and the read models follow")
            for name in self.names:
                await self.servicer.set(name, status)
        self.status, self.reason = status, reason
        return status

    async def close(self, wait: float = PROBE_TIMEOUT) -> None:
        """Stops probing, and waits (``wait`` seconds at most) for a probe still running: it
        reads through the connections the server closes next, and closing a SQLite
        connection under a running query crashed the whole process."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._pending is not None and not self._pending.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.wrap_future(self._pending), timeout=wait)
