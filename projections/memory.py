"""What the read models' writers remember from one batch to the next."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from projections.team import Node, OrderRow


@dataclass
class Memory:
    """What the read models' writers have read or written, kept from one batch to the next:
    without it every batch read again the upline of each seller and each order it touched,
    a query apiece. It is only valid while this process is the one applying the log (the
    runner forgets it when another runner has moved the position, or a batch failed)."""

    nodes: dict[tuple[str, str], Node | None] = field(default_factory=dict)
    orders: dict[str, OrderRow] = field(default_factory=dict)
    active: set[tuple[str, str, str]] = field(default_factory=set)
    owners: dict[str, tuple[str, str]] = field(default_factory=dict)
    position: int = -1  # the log position the contents are as of; -1: none

    LIMIT = 50_000  # entries kept before starting afresh (a few tens of MB at most)

    def forget(self) -> None:
        self.nodes.clear()
        self.orders.clear()
        self.active.clear()
        self.owners.clear()
        self.position = -1

    def begin(self, position: int) -> None:
        """A batch starts after ``position``: what is held is forgotten unless it is as of
        that position (and not too much), and holds as of no position until the batch commits
        (``committed``), so a failed batch leaves nothing to be trusted."""
        size = len(self.nodes) + len(self.orders) + len(self.active) + len(self.owners)
        if self.position != position or size > self.LIMIT:
            self.forget()
        self.position = -1

    def committed(self, position: int) -> None:
        """The batch's writes are in the database: what is held is as of ``position``."""
        self.position = position
