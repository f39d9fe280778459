"""Failpoints: named places where a test can make a server process die, as `kill -9` would.

A test aid (the pattern of FoundationDB's buggify and TiKV's fail-rs): a crash test needs to
land its kill exactly between two steps, which no timing can do. ``ledger serve`` reads
``LEDGER_FAILPOINTS`` once at start, e.g.::

    LEDGER_FAILPOINTS="close_day.after_begin=crash"
    LEDGER_FAILPOINTS="ApprovePayout.inside_commit=crash;close_day.after_begin=sleep(500)"

and each named place, when reached, does its action: ``crash`` sends the process SIGKILL (no
handler, no flush, no goodbye to the database: the same death as `kill -9`), ``sleep(ms)``
waits there (to make two servers' steps overlap). Unset, nothing is armed and each place
costs one test of a module-level flag.

The places:
- ``<Command>.inside_commit``: a batch holding that command (``ApprovePayout``,
  ``RunSettlement``, ``CloseDay``…) has inserted its events and not yet committed them
  (PostgreSQL store only: the place is in its recorder);
- ``<Command>.after_commit``: that batch committed, its callers not yet answered;
- ``close_day.after_begin``: CloseDay shut the day to writes and has not drawn its statement.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

ENV = "LEDGER_FAILPOINTS"
_SPEC = re.compile(r"^([A-Za-z_][\w.]*)=(crash|sleep\((\d{1,6})\))$")

# Place name → seconds to sleep there, or None to crash. Empty: nothing armed.
_armed: dict[str, float | None] = {}
_batch = threading.local()  # the command names of the batch this thread is saving


class FailpointError(ValueError):
    """LEDGER_FAILPOINTS is not of the form name=crash or name=sleep(ms), ';'-separated."""


def parse(spec: str) -> dict[str, float | None]:
    armed: dict[str, float | None] = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        match = _SPEC.match(part)
        if match is None:
            raise FailpointError(f"{ENV}: {part!r} is not name=crash or name=sleep(ms)")
        name, _, millis = match.groups()
        armed[name] = int(millis) / 1000 if millis is not None else None
    return armed


def arm(spec: str) -> None:
    """Arms the places ``spec`` names (replacing what was armed); '' disarms them all."""
    global _armed
    _armed = parse(spec)


def arm_from_env() -> None:
    arm(os.environ.get(ENV, ""))


def armed() -> bool:
    return bool(_armed)


def reached(name: str) -> None:
    """The thread has reached place ``name``: crash or sleep there if it is armed."""
    if _armed and name in _armed:
        seconds = _armed[name]
        if seconds is None:
            _crash(name)
        else:
            time.sleep(seconds)


async def reached_async(name: str) -> None:
    """``reached`` for the event loop: a sleep there holds up this call only."""
    if _armed and name in _armed:
        seconds = _armed[name]
        if seconds is None:
            _crash(name)
        else:
            await asyncio.sleep(seconds)


@contextmanager
def committing(commands: Iterable[object]) -> Iterator[None]:
    """Around a batch's save: names its commands for ``<Command>.inside_commit`` (reached
    by the store's recorder, see ``inside_commit``) and, once saved, reaches
    ``<Command>.after_commit``."""
    if not _armed:
        yield
        return
    names = sorted({type(command).__name__ for command in commands})
    _batch.names = names
    try:
        yield
    finally:
        _batch.names = ()
    for name in names:
        reached(f"{name}.after_commit")


def inside_commit() -> None:
    """Called by the recorder with the batch's events inserted and its transaction open."""
    if _armed:
        for name in getattr(_batch, "names", ()):
            reached(f"{name}.inside_commit")


def _crash(name: str) -> None:
    os.write(2, f"failpoint {name}: crashing (SIGKILL)\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)
