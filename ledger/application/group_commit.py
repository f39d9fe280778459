"""Group commit: the commands of many concurrent requests share one transaction.

The event store serialises writers (PostgreSQL takes a table lock per insert so that the log
never has gaps a reader could skip), so one transaction per request caps throughput at the
commit rate. Instead, requests queue here; one writer thread takes whatever has queued while
the previous batch was committing (up to ``max_batch``, optionally waiting ``max_wait``
seconds for more) and runs it as one batch. Under light load a batch is one command and adds
no delay; under heavy load batches grow and the commit cost is shared.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import structlog
from eventsourcing.persistence import InterfaceError, OperationalError

from ledger import metrics
from ledger.application.commands import Caller, Command
from ledger.application.ledger_app import LedgerApplication, Outcome
from ledger.outages import Outage

log = structlog.get_logger(__name__)


class Overloaded(Exception):
    """The write queue is full; the client should back off and retry."""


@dataclass(slots=True)
class _Pending:
    caller: Caller
    command: Command
    # One of the two: a thread's future, or (when an asyncio caller waits) the loop's own
    # future, whose loop is woken once per batch, not per command. A thread's future holds
    # a lock and a condition, so it is made only for the callers that need one.
    future: Future[Outcome] | None = None
    waiter: asyncio.Future[Outcome] | None = None


class GroupCommitter:
    def __init__(
        self,
        app: LedgerApplication,
        *,
        max_batch: int = 200,
        max_wait: float = 0.0,
        max_queue: int = 10_000,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        assert max_batch >= 1 and max_wait >= 0 and max_queue >= 1
        self.app = app
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.on_commit = on_commit
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self.outage = Outage("writing to the event store", logger=log, operation="write",
                             meanwhile="writes are answered UNAVAILABLE until it works")
        self.batches = 0
        self.commands = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finishes what is queued, then stops the writer thread."""
        self._queue.put(None)
        self._thread.join()

    def submit(self, caller: Caller, command: Command) -> Future[Outcome]:
        future: Future[Outcome] = Future()
        self._put(_Pending(caller, command, future=future))
        return future

    def submit_async(self, caller: Caller, command: Command) -> asyncio.Future[Outcome]:
        """For the event loop: the answer arrives with the rest of its batch in one wake-up."""
        waiter: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._put(_Pending(caller, command, waiter=waiter))
        return waiter

    def _put(self, pending: _Pending) -> _Pending:
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            raise Overloaded(f"{self._queue.maxsize} writes are already queued") from None
        return pending

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            deadline = time.monotonic() + self.max_wait
            while len(batch) < self.max_batch:
                try:
                    wait = deadline - time.monotonic()
                    item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)

    def _run_batch(self, batch: list[_Pending]) -> list[Outcome | BaseException]:
        """Runs the batch; once more if a lost connection failed it. That is safe whether or
        not the lost transaction had committed: each command's idempotency key commits
        with its events, so a command that did is answered as a replay of itself."""
        items = [(p.caller, p.command) for p in batch]
        try:
            return self.app.run_batch(items)
        except (OperationalError, InterfaceError):
            self.app.check_connections()
            return self.app.run_batch(items)

    def _commit(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            results = self._run_batch(batch)
        except (OperationalError, InterfaceError) as error:  # the store went away
            self.outage.failed(error)  # logged once per outage: callers hear UNAVAILABLE
            results = [error] * len(batch)
        except Exception as error:  # anything else failed every request in the batch
            log.exception("batch failed", size=len(batch))
            results = [error] * len(batch)
        else:
            self.outage.succeeded()
        metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_COMMANDS.observe(len(batch))
        self.batches += 1
        self.commands += len(batch)
        if self.on_commit is not None:
            self.on_commit()
        waiting: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Outcome], Any]]] = {}
        for pending, result in zip(batch, results, strict=True):
            if pending.waiter is not None:
                waiting.setdefault(pending.waiter.get_loop(), []).append(
                    (pending.waiter, result))
            elif pending.future is None:
                continue
            elif isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
        for loop, answers in waiting.items():
            loop.call_soon_threadsafe(_resolve, answers)


def _resolve(answers: list[tuple[asyncio.Future[Outcome], Any]]) -> None:
    for waiter, result in answers:
        if waiter.done():  # the call was cancelled meanwhile
            continue
        if isinstance(result, BaseException):
            waiter.set_exception(result)
        else:
            waiter.set_result(result)
