"""One log line per call: who called what, how it ended, how long it took.

Every method of every service (the ledger's, health, reflection) is registered through
``requests.add_service``, which wraps it with ``observed``: the wrapper opens a ``Call`` (a
request id taken from the client's ``x-request-id`` metadata, or made), keeps it in a
context variable for the call's task, and when the call ends writes one line with what the
servicers filled in (the key's platform and name, the write's log position and whether it
was a replay) and what the call ended with (its status code and ErrorInfo reason). The
request id goes back to the client in the trailing metadata, and into the message of any
error status (``errors.abort``), so a client's report of a failure names its log line.

An error is logged once, on that line: ``errors.abort`` hands the error to the call rather
than logging it, and an internal error's traceback is the line's.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from ledger import metrics

log = structlog.get_logger("ledger.requests")

REQUEST_ID = "x-request-id"
# A client's request id is used as sent when it is this long at most and printable ASCII
# without spaces (it goes into logs and into status messages); otherwise one is made.
MAX_REQUEST_ID = 128
# Codes a client caused and can correct: logged at info. The server's own trouble (the store
# away, a full queue, a deadline it could not meet) is a warning; INTERNAL and UNKNOWN are
# errors, with the traceback.
WARNING_CODES = frozenset(
    {"UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "ABORTED", "DATA_LOSS"}
)
ERROR_CODES = frozenset({"INTERNAL", "UNKNOWN"})


def _loud() -> bool:
    return False


@dataclass(slots=True)
class Call:
    """What is known of one call so far; the servicers fill in who and what was written."""

    request_id: str
    service: str
    method: str
    started: float
    platform: str = ""
    key: str = ""  # the key's name, never the key
    code: str = "OK"
    reason: str = ""
    log_position: int | None = None
    replayed: bool | None = None
    error: BaseException | None = None  # an unexpected error, logged with its traceback
    quiet: Callable[[], bool] = _loud  # see observed
    finished: bool = False  # its line is written (and it is counted) once

    def ended_with(self, code: str, reason: str, error: BaseException | None = None) -> None:
        self.code, self.reason = code, reason
        if error is not None:
            self.error = error

    def wrote(self, log_position: int, replayed: bool) -> None:
        self.log_position, self.replayed = log_position, replayed


_current: ContextVar[Call | None] = ContextVar("ledger_call", default=None)


def current() -> Call | None:
    """The call this task serves, if any (None outside a call: the scheduler, tests)."""
    return _current.get()


def wrote(log_position: int, replayed: bool) -> None:
    """Tells the current call's line where its write landed, and whether it was a replay."""
    call = _current.get()
    if call is not None:
        call.wrote(log_position, replayed)


def new_request_id() -> str:
    return os.urandom(8).hex()


def request_id_from(metadata: Any) -> str:
    """The client's ``x-request-id`` when usable, else a new one."""
    for item in metadata or ():
        if item[0] == REQUEST_ID:
            value = item[1]
            if (
                isinstance(value, str)
                and 0 < len(value) <= MAX_REQUEST_ID
                and value.isascii()
                and value.isprintable()
                and " " not in value
            ):
                return value
            break
    return new_request_id()


def trailing(call: Call | None) -> tuple[tuple[str, str], ...]:
    """The metadata that hands the request id back to the client."""
    return ((REQUEST_ID, call.request_id),) if call is not None else ()


def finish(context: grpc.aio.ServicerContext) -> None:
    """Writes the current call's line and counts it now, before its status is sent: an
    abort sends the status at once, and a client (or a scrape) that has its answer must
    find the call logged and counted."""
    call = _current.get()
    if call is not None:
        _finish(call, context)


def _finish(call: Call, context: grpc.aio.ServicerContext) -> None:
    if call.finished:
        return
    call.finished = True
    if call.code == "OK":
        code = context.code()  # set when health or reflection aborted, not through us
        if code is not None and code != grpc.StatusCode.OK:
            call.code = code.name if isinstance(code, grpc.StatusCode) else str(code)
    seconds = time.perf_counter() - call.started
    if metrics.on:
        metrics.observe_call(call.service, call.method, call.code, seconds)
    fields: dict[str, Any] = {
        "request_id": call.request_id,
        "service": call.service,
        "method": call.method,
        "code": call.code,
        "duration_ms": round(seconds * 1000, 3),
    }
    if call.platform:
        fields["platform"], fields["key"] = call.platform, call.key
    if call.reason:
        fields["reason"] = call.reason
    if call.log_position is not None:
        fields["log_position"], fields["replayed"] = call.log_position, call.replayed
    if call.code in ERROR_CODES:
        log.error("call", **fields, exc_info=call.error or True)
    elif call.code in WARNING_CODES:
        if call.error is not None:
            fields["error"] = f"{type(call.error).__name__}: {call.error}"
        log.warning("call", **fields)
    elif not call.quiet():
        log.info("call", **fields)


def _begin(
    service: str, method: str, context: grpc.aio.ServicerContext, quiet: Callable[[], bool]
) -> Call:
    call = Call(
        request_id_from(context.invocation_metadata()), service, method, time.perf_counter()
    )
    call.quiet = quiet
    _current.set(call)
    context.set_trailing_metadata(trailing(call))  # an abort replaces it, with the id too
    return call


def _ended_by(call: Call, error: BaseException) -> None:
    """A call that ended by an exception other than our own abort: the client went away
    (cancelled, or its deadline passed) or something escaped every handler."""
    if isinstance(error, grpc.aio.AbortError):
        return  # errors.abort filled in the code, or health/reflection set it
    if isinstance(error, asyncio.CancelledError):
        call.ended_with("CANCELLED", "")
    else:
        call.ended_with("UNKNOWN", "", error)


def observed(
    service: str, method: str, behavior: Callable[..., Any], quiet: Callable[[], bool] = _loud
) -> Callable[..., Any]:
    """``behavior`` (a coroutine function or an async generator function, as grpc.aio
    takes them) with a ``Call`` around it and its line written when it ends. While
    ``quiet()`` holds, calls that end at info level (OK and the client's own errors) are
    counted but not logged: the demo plays hundreds of calls to tell its story."""
    short = service.rsplit(".", 1)[-1]

    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            call = _begin(short, method, context, quiet)
            try:
                async for reply in behavior(request, context):
                    yield reply
            except BaseException as error:
                _ended_by(call, error)
                raise
            finally:
                _finish(call, context)

        return stream

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        call = _begin(short, method, context, quiet)
        try:
            return await behavior(request, context)
        except BaseException as error:
            _ended_by(call, error)
            raise
        finally:
            _finish(call, context)

    return unary
