"""Aggregate ids derived from business ids, so that the same business id always finds the
same aggregate on any server, and two tenants can never collide."""

from __future__ import annotations

from uuid import UUID, uuid5

NAMESPACE = UUID("6f6b1c4e-2b1e-4f55-9a55-5a1f0d2d7c11")


def stable_id(kind: str, *parts: str) -> UUID:
    # "\x1f" (unit separator) cannot appear in validated ids, so parts never run together.
    return uuid5(NAMESPACE, "\x1f".join((kind, *parts)))
