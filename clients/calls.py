"""One logical call of the SDK: a deadline, an idempotency key, retries, read-your-writes.

``Session`` holds what the calls of one client share: the API key, the default deadline,
the retry policy, and the log position of the last write it saw answered. ``Unary`` (sync)
and ``AsyncUnary`` (asyncio) wrap one generated stub method so that each call

- gets the session's deadline unless given one (``timeout=``): the whole call, retries
  included, ends by then;
- gets a fresh idempotency key when its request has that field and the caller left it
  empty: one key per logical operation, made before the first attempt and reused by every
  retry, so the ledger records the write once however many attempts reach it;
- on a read that takes ``min_log_position`` left at 0, asks for the last receipt's position
  this session saw (read-your-writes): the answer includes every write the session made;
- is retried on UNAVAILABLE and ABORTED only (retry.py), with backoff and jitter.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import grpc
from google.protobuf.message import Message
from ledger.clients.retry import RetryPolicy, retryable

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

Metadata = tuple[tuple[str, str], ...]

# The request and response fields the rules act on (messages are typed per RPC; the rules
# apply to whichever have them).
KEY_FIELD, POSITION_FIELD, RECEIPT_FIELD = "idempotency_key", "min_log_position", "receipt"

DEFAULT_DEADLINE = 10.0  # seconds for one logical call, retries included


def idempotency_key() -> str:
    """A fresh key for a new write; reuse it, and only it, when retrying that write."""
    return uuid.uuid4().hex


@dataclass
class Session:
    """What every call of one client shares. ``read_your_writes=False`` leaves reads'
    ``min_log_position`` alone (a client that wants the fastest, possibly older, answer)."""

    api_key: str
    deadline: float = DEFAULT_DEADLINE
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    read_your_writes: bool = True
    last_position: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key}"),)

    def prepare(self, request: Req) -> Req:
        """The request as sent on every attempt: with its idempotency key and, for a read,
        the position to read at (a copy: the caller's message is left as given)."""
        fields = request.DESCRIPTOR.fields_by_name
        needs_key = KEY_FIELD in fields and not getattr(request, KEY_FIELD)
        position = self.last_position if self.read_your_writes else 0
        needs_position = (
            POSITION_FIELD in fields and position and not getattr(request, POSITION_FIELD)
        )
        if not (needs_key or needs_position):
            return request
        sent = type(request)()
        sent.CopyFrom(request)
        if needs_key:
            setattr(sent, KEY_FIELD, idempotency_key())
        if needs_position:
            setattr(sent, POSITION_FIELD, position)
        return sent

    def saw(self, response: Message) -> None:
        """Remembers the log position of a write's receipt (the furthest one seen)."""
        if RECEIPT_FIELD in response.DESCRIPTOR.fields_by_name and response.HasField(RECEIPT_FIELD):
            position = getattr(response, RECEIPT_FIELD).log_position
            with self._lock:
                self.last_position = max(self.last_position, position)

    def call(self, request: Req, timeout: float | None, metadata: Metadata) -> LogicalCall[Req]:
        return LogicalCall(self, request, timeout, metadata)


class LogicalCall(Generic[Req]):
    """One logical call's attempts: the request each sends (key and position fixed before
    the first), the time left to each, and the wait after a failed one."""

    def __init__(
        self, session: Session, request: Req, timeout: float | None, metadata: Metadata
    ) -> None:
        self.request = session.prepare(request)
        self.metadata = (*session.metadata, *metadata)
        self._ends = time.monotonic() + (session.deadline if timeout is None else timeout)
        self._waits = session.retry.waits()

    def time_left(self) -> float:
        return max(0.0, self._ends - time.monotonic())

    def wait_after(self, error: grpc.RpcError) -> float:
        """The wait before the next attempt, or re-raises ``error`` when there is none: the
        code is not retried, the attempts are spent, or the deadline would pass meanwhile."""
        wait = next(self._waits, None) if retryable(error) else None
        if wait is None or wait >= self.time_left():
            raise error
        return wait


class Unary(Generic[Req, Resp]):
    """A unary method of a sync client (see the module's docstring)."""

    def __init__(self, method: grpc.UnaryUnaryMultiCallable[Req, Resp], session: Session) -> None:
        self._method = method
        self._session = session

    def __call__(
        self, request: Req, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> Resp:
        call = self._session.call(request, timeout, metadata)
        while True:
            try:
                response = self._method(
                    call.request, timeout=call.time_left(), metadata=call.metadata
                )
            except grpc.RpcError as error:
                time.sleep(call.wait_after(error))
                continue
            self._session.saw(response)
            return response


class AsyncUnary(Generic[Req, Resp]):
    """A unary method of an asyncio client: the same rules as ``Unary``, awaited."""

    def __init__(
        self, method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp], session: Session
    ) -> None:
        self._method = method
        self._session = session

    async def __call__(
        self, request: Req, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> Resp:
        call = self._session.call(request, timeout, metadata)
        while True:
            try:
                response = await self._method(
                    call.request, timeout=call.time_left(), metadata=call.metadata
                )
            except grpc.RpcError as error:
                await asyncio.sleep(call.wait_after(error))
                continue
            self._session.saw(response)
            return response
