"""How a use case's steps are carried out: its writes, its reads, its waits for the read models.

A use case here (closing.py, settlement.py, tax_reports.py, reconciliation.py) is a few
writes and reads with waits for the read models between them. Whoever runs it says how each
step is done, so the use case holds the business's sequence and nothing of the transport:
the API (``Base.steps`` in ledger/api/servicers.py) records each write on the call's log
line, reads once more after a lost connection, and waits for the read models no longer than
the call's deadline; the server's own scheduled work (the finisher of closes, the scheduled
settlement) runs with ``background_steps``, which waits up to ``CATCH_UP_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ledger.application.commands import Caller, Command
from ledger.application.group_commit import GroupCommitter
from ledger.application.ledger_app import LedgerApplication, Outcome

CATCH_UP_TIMEOUT = 60.0  # how long scheduled work waits for the read models


@dataclass(frozen=True)
class Steps:
    """``write``: queues a command for the next group commit and answers with its outcome
    and the aggregate it answered with; ``read``: runs a blocking read off the event loop;
    ``caught_up``: waits until the read models hold a log position, and says where they
    are."""

    write: Callable[[Caller, Command], Awaitable[tuple[Outcome, Any]]]
    read: Callable[..., Awaitable[Any]]
    caught_up: Callable[[int], Awaitable[int]]


def background_steps(app: LedgerApplication, writer: GroupCommitter,
                     processed: Callable[[], int],
                     timeout: float = CATCH_UP_TIMEOUT) -> Steps:
    """Steps for work the server does on its own (no call, so no deadline and no log line):
    ``processed`` says how far the read models have applied the log."""

    async def read(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def write(caller: Caller, command: Command) -> tuple[Outcome, Any]:
        outcome = await writer.submit_async(caller, command)
        if outcome.answer is not None:
            return outcome, outcome.answer
        return outcome, await read(app.answer, outcome.ref)

    async def caught_up(position: int) -> int:
        deadline = time.monotonic() + timeout
        while processed() < position:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"read models did not reach log position {position}")
            await asyncio.sleep(0.01)
        return processed()

    return Steps(write, read, caught_up)
