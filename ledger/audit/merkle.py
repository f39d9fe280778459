"""Merkle trees as RFC 9162 (Certificate Transparency 2.0), section 2.1, defines them.

A platform's entries are the leaves of one append-only tree. These are the tree's whole
arithmetic: hashes, the frontier a writer keeps to append in O(log n), the hashes of the
ranges a proof needs, proof generation from stored nodes, and the RFC's own verification
algorithms (2.1.3.2, 2.1.4.2), which a client runs with nothing but the proof and the roots.

Nodes are named (level, index): the perfect subtree of 2**level leaves that starts at leaf
index * 2**level. A ``NodeSource`` gives any such node that is complete; everything else is
computed from them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from hashlib import sha256

HASH_SIZE = 32
EMPTY_ROOT = sha256(b"").digest()

NodeSource = Callable[[int, int], bytes]  # (level, index) -> hash of a complete subtree


def leaf_hash(data: bytes) -> bytes:
    return sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """k with k < n <= 2k (n >= 2): where RFC 9162 splits a tree of n leaves."""
    assert n >= 2
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The roots of the perfect subtrees a tree of ``size`` leaves is made of (one per set
    bit of size, largest first). Enough to append a leaf and to compute the root."""

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        assert len(nodes) == bin(size).count("1"), "one node per set bit of the size"
        self.size = size
        self.nodes = list(nodes)

    @classmethod
    def of(cls, size: int, node: NodeSource) -> Frontier:
        """The frontier of a stored tree, read through ``node``."""
        return cls(size, [node(level, start >> level) for level, start in perfect_ranges(0, size)])

    def append(self, leaf: bytes) -> list[bytes]:
        """Adds a leaf hash; returns the hashes of the subtrees it completes, level 1 first
        (level 0, the leaf itself, is not repeated)."""
        completed = []
        h, n = leaf, self.size
        while n & 1:
            h = node_hash(self.nodes.pop(), h)
            completed.append(h)
            n >>= 1
        self.nodes.append(h)
        self.size += 1
        return completed

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        h = self.nodes[-1]
        for left in reversed(self.nodes[:-1]):
            h = node_hash(left, h)
        return h

    def copy(self) -> Frontier:
        return Frontier(self.size, self.nodes)


class Tree(Frontier):
    """A tree built leaf by leaf that keeps every complete subtree: one bytearray per level,
    32 bytes a node (about 64 bytes a leaf in all, and no object per node), so that any
    root or proof over it can be had (``node`` is a ``NodeSource``). For a verifier that
    rebuilds a whole log and then checks heads and proofs against it."""

    def __init__(self) -> None:
        super().__init__()
        self.levels = [bytearray()]  # level 0: the leaves

    def append(self, leaf: bytes) -> list[bytes]:
        levels = self.levels
        levels[0] += leaf
        completed = super().append(leaf)
        for level, node in enumerate(completed, 1):
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += node
        return completed

    def node(self, level: int, index: int) -> bytes:
        start = index * HASH_SIZE
        found = bytes(self.levels[level][start:start + HASH_SIZE])
        assert len(found) == HASH_SIZE, f"node ({level}, {index}) is not complete"
        return found

    def root_at(self, size: int) -> bytes:
        """MTH of the first ``size`` leaves."""
        return range_hash(0, size, self.node)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH over the given leaf hashes."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


def perfect_ranges(start: int, end: int) -> list[tuple[int, int]]:
    """[start, end) as the complete subtrees it is made of, left to right: (level, first
    leaf). For the ranges RFC 9162's trees and proofs use (start a multiple of the first
    subtree's size) this is exactly how MTH splits them."""
    out = []
    while start < end:
        level = (end - start).bit_length() - 1
        while start % (1 << level):
            level -= 1
        out.append((level, start))
        start += 1 << level
    return out


def range_hash(start: int, end: int, node: NodeSource) -> bytes:
    """MTH(D[start:end]) from stored complete subtrees."""
    if start == end:
        return EMPTY_ROOT
    parts = [node(level, first >> level) for level, first in perfect_ranges(start, end)]
    h = parts[-1]
    for left in reversed(parts[:-1]):
        h = node_hash(left, h)
    return h


def inclusion_proof(index: int, size: int, node: NodeSource) -> list[bytes]:
    """PATH(index, D[size]), RFC 9162 2.1.3.1."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    proof: list[bytes] = []

    def path(m: int, lo: int, hi: int) -> None:
        n = hi - lo
        if n == 1:
            return
        k = largest_power_of_two_below(n)
        if m < k:
            path(m, lo, lo + k)
            proof.append(range_hash(lo + k, hi, node))
        else:
            path(m - k, lo + k, hi)
            proof.append(range_hash(lo, lo + k, node))

    path(index, 0, size)
    return proof


def consistency_proof(first: int, second: int, node: NodeSource) -> list[bytes]:
    """PROOF(first, D[second]), RFC 9162 2.1.4.1 (empty when first is 0 or equals second)."""
    if not 0 <= first <= second:
        raise ValueError(f"a tree of {first} cannot precede one of {second}")
    if first in (0, second):
        return []
    proof: list[bytes] = []

    def subproof(m: int, lo: int, hi: int, whole: bool) -> None:
        n = hi - lo
        if m == n:
            if not whole:
                proof.append(range_hash(lo, hi, node))
            return
        k = largest_power_of_two_below(n)
        if m <= k:
            subproof(m, lo, lo + k, whole)
            proof.append(range_hash(lo + k, hi, node))
        else:
            subproof(m - k, lo + k, hi, False)
            proof.append(range_hash(lo, lo + k, node))

    subproof(first, 0, second, True)
    return proof


def _lsb(n: int) -> bool:
    return bool(n & 1)


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """RFC 9162 2.1.3.2: whether ``leaf`` (a leaf hash) is leaf ``index`` of the tree of
    ``size`` leaves whose root is ``root``."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if _lsb(fn) or fn == sn:
            r = node_hash(p, r)
            while not _lsb(fn) and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: whether the tree of ``second`` leaves extends the tree of
    ``first`` leaves (nothing among the first rewritten), given both roots."""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:  # every tree extends the empty one
        return not proof and first_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while _lsb(fn):
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if _lsb(fn) or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not _lsb(fn) and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0
