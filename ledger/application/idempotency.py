"""Idempotency keys: a retried write returns the first answer and writes nothing new.

The record of a key is an aggregate written in the same transaction as the command's own
events, so a key is either recorded together with its effects or not at all. It keeps a
fingerprint of the request (to refuse the same key on a different request) and a reference to
the answer: the aggregate and the version it reached, from which the first answer is rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.copying import CheapCopy
from ledger.domain.errors import RuleViolation
from ledger.domain.ids import stable_id


@dataclass(frozen=True)
class ResultRef:
    """Where the answer to a write lives: an aggregate at a version, plus a detail (refund id)."""

    kind: str
    aggregate_id: UUID
    version: int
    detail: str = ""


class IdempotencyRecord(CheapCopy, Aggregate):
    @staticmethod
    def create_id(platform_id: str, principal: str, key: str) -> UUID:
        return stable_id("idempotency", platform_id, principal, key)

    @event("Recorded")
    def __init__(
        self, platform_id: str, principal: str, key: str, fingerprint: str, result: ResultRef
    ) -> None:
        self.platform_id = platform_id
        self.principal = principal
        self.key = key
        self.fingerprint = fingerprint
        self.result = result

    def check_same_request(self, fingerprint: str) -> None:
        """Refuses the key for a request other than the one it was first used for."""
        if self.fingerprint != fingerprint:
            raise RuleViolation(
                f"idempotency key {self.key!r} was already used for a different request",
                reason="IDEMPOTENCY_KEY_REUSED",
            )
