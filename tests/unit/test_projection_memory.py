"""What the read models' writers remember between batches (projections/memory.py) stays
bounded and lets go of the oldest first."""

from __future__ import annotations

from ledger.projections.memory import Memory


def test_the_writers_memory_lets_go_of_the_oldest_between_batches_and_stays_bounded() -> None:
    memory = Memory(limit=100)
    for n in range(1_000):
        memory.begin(n)
        memory.orders[f"o{n}"] = None  # type: ignore[assignment]
        memory.owners[f"u{n}"] = ("acme", f"k{n}")
        memory.nodes[("acme", f"r{n}")] = None
        memory.committed(n + 1)
        assert memory.size <= 100 + 3  # a batch may add to it; trimmed before the next
    assert "o999" in memory.orders and "o0" not in memory.orders
    assert list(memory.orders) == sorted(memory.orders, key=lambda k: int(k[1:]))
    memory.begin(12345)  # another runner moved the position: nothing is trusted
    assert memory.size == 0
