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

# The kinds of answer: which aggregate answers a write.
ORDER = "order"
RESELLER = "reseller"
BINDING = "binding"
PLAN = "plan"
SETTLEMENT = "settlement"
PAYOUT = "payout"
PERIOD = "period"
BILL = "bill"
BREAKS = "breaks"
PAYEE = "payee"
TAX_TABLE = "tax-table"
QUARTER = "quarter"


@dataclass(frozen=True)
class ResultRef:
    """Where the answer to a write lives: an aggregate at a version, and what the answer
    names within it, each in a field of its own (empty for the kinds it is not about).

    Stored in idempotency records as the list of its field values (see transcodings.py): a
    field may be added only at the end, with a default."""

    kind: str
    aggregate_id: UUID
    version: int
    refund_id: str = ""  # RefundOrder: the refund made, among the order's refunds
    published_version: int = 0  # PublishPlan, PublishTaxTable: the version published
    settled_count: int = 0  # RunSettlement: how many of the orders asked for it settled
    # ImportBill: the same bill (by its digest) was imported before: the answer is that import.
    already_imported: bool = False


# What ``detail`` meant, by kind, in records stored before the typed fields: a refund id, a
# published version, a count of orders settled, or "duplicate" for a bill imported before.
# Other kinds' detail (a day, a break id, a quarter) repeated the request and is not kept.
DUPLICATE_DETAIL = "duplicate"


def from_detail(kind: str, aggregate_id: UUID, version: int, detail: str = "") -> ResultRef:
    """A ResultRef as stored before it had typed fields, when one string, ``detail``, carried
    whatever the answer named (see the note above)."""
    if kind == ORDER:
        return ResultRef(kind, aggregate_id, version, refund_id=detail)
    if kind in (PLAN, TAX_TABLE) and detail:
        return ResultRef(kind, aggregate_id, version, published_version=int(detail))
    if kind == SETTLEMENT and detail:
        return ResultRef(kind, aggregate_id, version, settled_count=int(detail))
    if kind == BILL:
        return ResultRef(kind, aggregate_id, version,
                         already_imported=detail == DUPLICATE_DETAIL)
    return ResultRef(kind, aggregate_id, version)


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
