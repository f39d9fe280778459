"""What a running ledger server says of its read models while a benchmark drives it: the
log's head, the position the read models have applied, the lag between them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from bench.servers import KEY
from ledger.v1 import report_pb2, report_pb2_grpc


@contextlib.asynccontextmanager
async def projection_status(address: str) -> AsyncIterator[Callable[[], Awaitable[Any]]]:
    """A channel to the server for as long as it is needed, and a call that asks it for
    the read models' status (log position, position applied, lag)."""
    metadata = (("authorization", f"Bearer {KEY}"),)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = report_pb2_grpc.ReportServiceStub(channel)
        yield lambda: stub.GetProjectionStatus(report_pb2.GetProjectionStatusRequest(),
                                               metadata=metadata)


async def lag_sampler(address: str, stop: asyncio.Event) -> tuple[int, int]:
    """(max lag, log position) seen while the load ran."""
    worst = head = 0
    async with projection_status(address) as status_now:
        while not stop.is_set():
            status = await status_now()
            worst, head = max(worst, status.lag), status.log_position
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
    return worst, head


async def log_position(address: str) -> int:
    async with projection_status(address) as status_now:
        return int((await status_now()).log_position)


async def caught_up(address: str, position: int) -> None:
    """Returns once the read models have applied the log up to ``position``."""
    async with projection_status(address) as status_now:
        while (await status_now()).processed_position < position:
            await asyncio.sleep(0.05)
