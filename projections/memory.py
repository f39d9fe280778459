"""What the read models' writers remember from one batch to the next."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ledger.projections.team import OrderRow
    from ledger.projections.team_tree import Node


# Entries kept by default (LEDGER_PROJECTION_CACHE): a few tens of MB at most.
DEFAULT_LIMIT = 50_000


@dataclass
class Memory:
    """What the read models' writers have read or written, kept from one batch to the next:
    without it every batch read again the upline of each seller and each order it touched,
    a query apiece. It is only valid while this process is the one applying the log (the
    runner forgets it when another runner has moved the position, or a batch failed).

    Bounded: past ``limit`` entries, the oldest are let go between batches (never during
    one, whose writers rely on what they put here until they flush). Emptying it all at
    once, as it used to, made the next batches read everything again, and the process's
    memory rose for as long as it took to fill up again."""

    nodes: dict[tuple[str, str], Node | None] = field(default_factory=dict)
    orders: dict[str, OrderRow] = field(default_factory=dict)
    owners: dict[str, tuple[str, str]] = field(default_factory=dict)
    # (platform, member, month) -> when the member's first payment of the month was made
    starts: dict[tuple[str, str, str], int | None] = field(default_factory=dict)
    # (platform, account, currency, bucket) -> its last running balance, (day, balance)
    balances: dict[tuple[str, str, str, str], tuple[str, int]] = field(default_factory=dict)
    position: int = -1  # the log position the contents are as of; -1: none
    limit: int = DEFAULT_LIMIT

    def forget(self) -> None:
        self.nodes.clear()
        self.orders.clear()
        self.owners.clear()
        self.starts.clear()
        self.balances.clear()
        self.position = -1

    @property
    def size(self) -> int:
        return (len(self.nodes) + len(self.orders) + len(self.owners) + len(self.starts)
                + len(self.balances))

    def begin(self, position: int) -> None:
        """A batch starts after ``position``: what is held is forgotten unless it is as of
        that position, and holds as of no position until the batch commits (``committed``),
        so a failed batch leaves nothing to be trusted."""
        if self.position != position:
            self.forget()
        elif self.size > self.limit:
            self._trim()
        self.position = -1

    def _trim(self) -> None:
        """Down to nine tenths of the limit (so trimming comes in chunks, not every batch),
        each kind in proportion to what it holds, the earliest remembered first."""
        keep = self.limit * 9 // 10
        size = self.size
        for held in (self.nodes, self.orders, self.owners, self.starts, self.balances):
            for key in list(islice(held, len(held) - len(held) * keep // size)):
                del held[key]

    def committed(self, position: int) -> None:
        """The batch's writes are in the database: what is held is as of ``position``."""
        self.position = position
