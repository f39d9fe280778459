"""What reconciliation records (ledger/domain/reconciliation.py matches): the rail's bills
as imported, and finance's acknowledgements of breaks. Both are history, never edited: a
bill imported again is recognised by its digest and changes nothing, and a break is
resolved only by an acknowledgement recorded here or by a correcting write elsewhere (the
read model then finds both sides matching)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.copying import CheapCopy
from ledger.domain.decisions import Decided, Event
from ledger.domain.ids import stable_id
from ledger.domain.reconciliation import BillLine


class RailBill(Decided, CheapCopy, Aggregate):
    """One bill file, named by the SHA-256 of its bytes, with the lines read from it."""

    @staticmethod
    def create_id(platform_id: str, digest: str) -> UUID:
        return stable_id("rail-bill", platform_id, digest)

    @event("Imported")
    def __init__(
        self,
        platform_id: str,
        digest: str,
        day: str,
        kind: str,
        fmt: str,
        lines: Sequence[BillLine],
        imported_by: str,
        imported_at: datetime,
    ) -> None:
        self.platform_id = platform_id
        self.digest = digest
        self.day = day
        self.kind = kind
        self.fmt = fmt
        self.line_count = len(lines)
        self.imported_by = imported_by
        self.imported_at = imported_at


class BreakBook(Decided, CheapCopy, Aggregate):
    """Finance's acknowledgements of one day's breaks (break id → reason)."""

    @staticmethod
    def create_id(platform_id: str, day: str) -> UUID:
        return stable_id("break-book", platform_id, day)

    @event("Opened")
    def __init__(self, platform_id: str, day: str) -> None:
        self.platform_id = platform_id
        self.day = day
        self.acknowledged: dict[str, str] = {}

    @event("Acknowledged")
    def _acknowledged(self, break_id: str, reason: str, by: str, at: datetime) -> None:
        self.acknowledged[break_id] = reason


@dataclass(frozen=True, slots=True)
class Acknowledge:
    break_id: str
    reason: str
    by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Acknowledged(Event):
    method: ClassVar[str] = "_acknowledged"
    break_id: str
    reason: str
    by: str
    at: datetime


def decide_acknowledge(book: BreakBook, cmd: Acknowledge) -> list[Event]:
    """Recorded each time it is asked (the API asks only for a break open in the read model,
    or one this book acknowledged before): a break resolved and found again is open again,
    and acknowledged again."""
    return [Acknowledged(cmd.break_id, cmd.reason, cmd.by, cmd.at)]
