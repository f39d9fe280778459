"""Idempotency keys: a retried write returns the first answer and writes nothing new.

A key is recorded in the same transaction as the command's own events, so it is either
recorded together with its effects or not at all: in a table of its own beside the log (see
adapters/idempotency_keys.py), not in the log, which holds only the business's events. It
keeps a fingerprint of the request (to refuse the same key on a different request), a
reference to the answer (the aggregate and the version it reached, from which the first
answer is rebuilt) and the answer's log position (its receipt).

Logs written before the table hold their keys as ``IdempotencyRecord`` events (and so do
servers of the older code during a rolling upgrade): a key not in the table is looked for
there too, so the retries of those writes still replay their first answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.copying import CheapCopy
from ledger.domain.decisions import Decided
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


# (platform, principal, key): a key is the caller's own.
Key = tuple[str, str, str]


def check_same_request(key: str, recorded: str, fingerprint: str) -> None:
    """Refuses a key for a request (``fingerprint``) other than the one it was first used
    for (``recorded``)."""
    if recorded != fingerprint:
        raise RuleViolation(f"idempotency key {key!r} was already used for a different "
                            "request", reason="IDEMPOTENCY_KEY_REUSED")


@dataclass(frozen=True)
class KeyRecord:
    """A key as recorded: the request's fingerprint, its answer and the answer's position."""

    fingerprint: str
    result: ResultRef
    position: int


@dataclass
class NewKey:
    """A key a batch records: ``writes`` are the (aggregate, version) its command wrote;
    the store sets ``position`` when it writes the row (the last of those events' log
    positions, or the log's head for a command that wrote none)."""

    platform: str
    principal: str
    key: str
    fingerprint: str
    result: ResultRef
    writes: tuple[tuple[UUID, int], ...]
    position: int = field(default=0)


class KeyBook:
    """The keys one batch knows: those recorded before it (read once, for every command of
    the batch) and those it records itself, so a key used twice in one batch replays."""

    def __init__(self, recorded_keys: Callable[[Sequence[Key]], dict[Key, KeyRecord]],
                 logged: Callable[[Key], KeyRecord | None] = lambda key: None) -> None:
        self._recorded_keys = recorded_keys
        self._logged = logged
        self._known: dict[Key, KeyRecord | None] = {}
        self.new: dict[Key, NewKey] = {}

    def prefetch(self, keys: Sequence[Key]) -> None:
        wanted = [k for k in dict.fromkeys(keys) if k not in self._known]
        if wanted:
            found = self._recorded_keys(wanted)
            for k in wanted:
                self._known[k] = found.get(k)

    def find(self, key: Key) -> KeyRecord | NewKey | None:
        if key in self.new:
            return self.new[key]
        self.prefetch([key])
        if self._known[key] is None:
            self._known[key] = self._logged(key)
        return self._known[key]

    def add(self, new: NewKey) -> None:
        self.new[(new.platform, new.principal, new.key)] = new

    def position(self, key: Key) -> int:
        """The receipt of a key this batch recorded or found recorded."""
        found = self.find(key)
        assert found is not None, key
        return found.position


class IdempotencyRecord(Decided, CheapCopy, Aggregate):
    """A key as logs written before keys had a table of their own recorded it: an event in
    the log, found by its id (``create_id``) when the table does not have the key."""

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
