"""Aggregate ids derived from business ids, so that the same business id always finds the
same aggregate on any server, and two tenants can never collide."""

from __future__ import annotations

from functools import lru_cache
from uuid import UUID, uuid5

NAMESPACE = UUID("6f6b1c4e-2b1e-4f55-9a55-5a1f0d2d7c11")


# The same few ids (a platform's plan book, a busy reseller) are derived again and again; SHA-1
# per call was a few percent of the writer's time.
@lru_cache(maxsize=65_536)
def stable_id(kind: str, *parts: str) -> UUID:
    # "\x1f" (unit separator) cannot appear in validated ids, so parts never run together.
    return uuid5(NAMESPACE, "\x1f".join((kind, *parts)))
