"""When and how long the SDK waits before trying a call again.

Only two codes are retried: UNAVAILABLE (the server or the network is not there right now)
and ABORTED (the ledger met a concurrent write and wrote nothing; its README calls it safe to
retry). Every other code is an answer about the request itself (INVALID_ARGUMENT,
FAILED_PRECONDITION…), and asking again would get the same one. A write is only ever retried
with the idempotency key of its first attempt, so a retry of a write that did land is a
replay, never a second write.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter (each wait uniformly drawn between zero and the
    current ceiling), so clients that failed together do not come back together.

    ``attempts``: the most tries of one call, the first included (1: never retry);
    ``initial``/``maximum``: the first ceiling and the largest, in seconds."""

    attempts: int = 5
    initial: float = 0.05
    maximum: float = 2.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a call is tried at least once (attempts >= 1)")

    def waits(self, rng: random.Random | None = None) -> Iterator[float]:
        """The waits before the second, third… attempt: ``attempts - 1`` of them."""
        draw = (rng or random).uniform
        ceiling = self.initial
        for _ in range(self.attempts - 1):
            yield draw(0, ceiling)
            ceiling = min(self.maximum, ceiling * self.multiplier)


NO_RETRY = RetryPolicy(attempts=1)


def retryable(error: grpc.RpcError) -> bool:
    """Whether a failed call may be tried again (a sync call's error and an asyncio call's
    AioRpcError both carry ``code()``)."""
    code = getattr(error, "code", None)
    return callable(code) and code() in RETRYABLE
