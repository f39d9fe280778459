"""Signed heads and proofs over the platforms' audit trees (docs/audit-format.md).

The trees are written with the log (audit_store.TreeAppender); this signs their heads (at a
day's close, and on demand), publishes the signing key beside them, and answers inclusion and
consistency proofs from the stored nodes, refusing sizes the tree has not reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog

from ledger.application.ports import AuditRecords
from ledger.audit.entries import StoredEntry, now_us
from ledger.audit.merkle import consistency_proof, inclusion_proof, range_hash
from ledger.audit.signing import KeyFileError, Signer, TreeHead
from ledger.domain.errors import InvalidInput

log = structlog.get_logger(__name__)


def load_or_create_signer(path: Path) -> Signer:
    """The signing key in ``path``, made there (and said so, with its public half) when the
    file does not exist yet: the embedded default needs no set-up, and a production
    deployment names a key file it made with `ledger audit keygen`."""
    if path.exists():
        return Signer.load(path)
    signer = Signer.generate()
    try:
        signer.save(path)
    except KeyFileError:  # another process made it first
        return Signer.load(path)
    log.warning("made a new audit signing key; publish its public key for your auditors",
                file=str(path), key_id=signer.key_id, public_key=signer.public_key.hex())
    return signer


@dataclass(frozen=True)
class InclusionProof:
    seq: int
    tree_size: int
    leaf_hash: bytes
    path: list[bytes]
    root: bytes


@dataclass(frozen=True)
class ConsistencyProof:
    first_size: int
    second_size: int
    first_root: bytes
    second_root: bytes
    path: list[bytes]


class AuditTrail:
    def __init__(self, log_: AuditRecords, signer: Signer) -> None:
        self.log = log_
        self.signer = signer

    def publish_key(self) -> None:
        self.log.add_key(self.signer.key_id, self.signer.public_key)

    def sign(self, platform: str, reason: str, size: int | None = None) -> TreeHead:
        """Signs and records the head of the platform's first ``size`` entries (all of
        them by default)."""
        if size is None:
            size = self.log.tree_size(platform)
        head = self.signer.sign(platform, size, self.log.root(platform, size), now_us(),
                                reason)
        self.log.add_head(platform, head.tree_size, head.root, head.timestamp_us, head.key_id,
                          head.signature, head.reason)
        return head

    def sign_at_position(self, platform: str, position: int, reason: str) -> TreeHead:
        """The head of the platform's entries recorded at or before log ``position``."""
        return self.sign(platform, reason, self.log.tree_size(platform, position))

    def current_head(self, platform: str) -> TreeHead:
        """The latest signed head if the tree has not grown since; else one signed now."""
        size = self.log.tree_size(platform)
        heads = self.heads(platform)
        if heads and heads[-1].tree_size == size:
            return heads[-1]
        return self.sign(platform, "on demand", size)

    def heads(self, platform: str) -> list[TreeHead]:
        return [TreeHead(platform, size, root, at, key_id, signature, reason)
                for size, root, at, key_id, signature, reason in self.log.heads(platform)]

    def keys(self) -> dict[str, bytes]:
        return {**self.log.keys(), self.signer.key_id: self.signer.public_key}

    def entries(self, platform: str, from_seq: int, limit: int) -> list[StoredEntry]:
        return self.log.entries(platform, from_seq, limit)

    def _size(self, platform: str, size: int, field: str) -> int:
        current = self.log.tree_size(platform)
        if size > current:
            raise InvalidInput([(field, f"the tree has {current} entries, not {size}")])
        return size or current

    def inclusion(self, platform: str, seq: int, tree_size: int) -> InclusionProof:
        size = self._size(platform, tree_size, "tree_size")
        if seq >= size:
            raise InvalidInput([("seq", f"must be below the tree size {size}")])
        path, root, leaf = self.log.compute(platform, lambda node: (
            inclusion_proof(seq, size, node), range_hash(0, size, node), node(0, seq)))
        return InclusionProof(seq, size, leaf, path, root)

    def consistency(self, platform: str, first: int, second: int) -> ConsistencyProof:
        size = self._size(platform, second, "second_size")
        if first > size:
            raise InvalidInput([("first_size", f"must not be above the second size {size}")])
        path, first_root, second_root = self.log.compute(platform, lambda node: (
            consistency_proof(first, size, node), range_hash(0, first, node),
            range_hash(0, size, node)))
        return ConsistencyProof(first, size, first_root, second_root, path)
