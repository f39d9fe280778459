"""An auditor's client of a running ledger: its history as export records, an export file
written from them, and inclusion and consistency proofs checked against signed heads.

The records are the export file's own (ledger.audit.export_file), so `verify` and `replay`
run on a server's answers exactly as on a file. First a head is signed over the whole tree
(GetSignedHead), so the history read is the one that head covers, entry for entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from ledger.clients.sdk import LedgerClient

from ledger.audit.entries import now_us
from ledger.audit.export_file import EntryRecord, ExportWriter, Header, HeadRecord, KeyRecord
from ledger.audit.merkle import verify_consistency, verify_inclusion
from ledger.audit.signing import TreeHead, verify_head
from ledger.v1 import audit_pb2

PAGE = 5_000


def head_of(message: audit_pb2.SignedTreeHead) -> TreeHead:
    return TreeHead(message.platform, message.tree_size, message.root, message.timestamp_us,
                    message.key_id, message.signature, message.reason)


@dataclass
class Snapshot:
    """What a server says of a platform's history at one moment: its keys, the head it
    signed for this read, and every head signed up to it."""

    platform: str
    keys: dict[str, bytes]
    head: TreeHead
    heads: list[TreeHead]


class AuditClient:
    def __init__(self, client: LedgerClient) -> None:
        self.stub = client.audit

    def snapshot(self) -> Snapshot:
        head = head_of(self.stub.GetSignedHead(audit_pb2.GetSignedHeadRequest()).head)
        keys = {k.key_id: k.public_key for k in
                self.stub.GetPublicKeys(audit_pb2.GetPublicKeysRequest()).keys}
        heads = [head_of(h) for h in
                 self.stub.ListSignedHeads(audit_pb2.ListSignedHeadsRequest()).heads
                 if h.tree_size <= head.tree_size]
        return Snapshot(head.platform, keys, head, heads)

    def entries(self, size: int, from_seq: int = 0) -> Iterator[EntryRecord]:
        """Entries from_seq … size-1, streamed."""
        if from_seq >= size:
            return
        for page in self.stub.StreamEvents(audit_pb2.StreamEventsRequest(
                from_seq=from_seq, page_size=PAGE)):
            for e in page.entries:
                if e.seq >= size:
                    return
                yield EntryRecord(e.seq, e.log_position, e.recorded_at_us, e.stream_id,
                                  e.version, e.topic, e.state, e.leaf_hash)

    def records(self, snapshot: Snapshot | None = None) -> Iterator[Any]:
        """The platform's history as export records: header, keys, entries, heads."""
        snap = snapshot or self.snapshot()
        yield Header(snap.platform, now_us(), snap.head.tree_size, len(snap.heads))
        for key_id, public in snap.keys.items():
            yield KeyRecord(key_id, public)
        yield from self.entries(snap.head.tree_size)
        for h in snap.heads:
            yield HeadRecord(h.tree_size, h.root, h.timestamp_us, h.key_id, h.signature,
                             h.reason)

    def export(self, path: Path) -> Snapshot:
        """Writes the platform's history to ``path`` (JSON Lines, docs/audit-format.md)."""
        snap = self.snapshot()
        with path.open("wb") as out:
            writer = ExportWriter(out, snap.platform, now_us(), entries=snap.head.tree_size,
                                  heads=len(snap.heads))
            for public in snap.keys.values():
                writer.key(public)
            for record in self.entries(snap.head.tree_size):
                writer.entry(record.entry(snap.platform), record.leaf_hash)
            for head in snap.heads:
                writer.head(head)
            writer.close()
        return snap

    # --- proofs -------------------------------------------------------------------------

    def prove_inclusion(self, seq: int, keys: dict[str, bytes]) -> str:
        """Checks that entry ``seq``, as the server gives it, is in the tree under a head
        signed now by one of ``keys``: recomputes its leaf from its content and runs RFC
        9162's verification. Returns what was proved; raises ProofFailed."""
        snap = self.snapshot()
        _check_signed(snap.head, keys)
        if seq >= snap.head.tree_size:
            raise ProofFailed(f"the tree has {snap.head.tree_size} entries; there is no {seq}")
        [record] = list(self.entries(seq + 1, from_seq=seq))
        leaf = record.entry(snap.platform).leaf_hash()
        proof = self.stub.GetInclusionProof(audit_pb2.GetInclusionProofRequest(
            seq=seq, tree_size=snap.head.tree_size))
        if not verify_inclusion(seq, snap.head.tree_size, leaf, list(proof.path),
                                snap.head.root):
            raise ProofFailed(f"entry {seq} as served is not leaf {seq} of the signed tree of "
                              f"{snap.head.tree_size}: altered, or the proof is wrong")
        return (f"entry {seq} ({record.topic}) is leaf {seq} of the tree of "
                f"{snap.head.tree_size} entries signed by {snap.head.key_id}")

    def prove_consistency(self, first_size: int, first_root: bytes,
                          keys: dict[str, bytes]) -> str:
        """Checks that the tree under a head signed now extends the earlier tree of
        ``first_size`` entries with ``first_root`` (one the auditor kept): nothing among
        those entries was rewritten since."""
        snap = self.snapshot()
        _check_signed(snap.head, keys)
        proof = self.stub.GetConsistencyProof(audit_pb2.GetConsistencyProofRequest(
            first_size=first_size, second_size=snap.head.tree_size))
        if not verify_consistency(first_size, snap.head.tree_size, first_root,
                                  snap.head.root, list(proof.path)):
            raise ProofFailed(f"the signed tree of {snap.head.tree_size} entries does not "
                              f"extend the tree of {first_size} you kept: history was "
                              "rewritten")
        return (f"the tree of {snap.head.tree_size} entries signed by {snap.head.key_id} "
                f"extends the tree of {first_size} you kept")


class ProofFailed(Exception):
    pass


def _check_signed(head: TreeHead, keys: dict[str, bytes]) -> None:
    if not verify_head(head, keys):
        raise ProofFailed(f"the head of {head.tree_size} entries is not signed by a trusted key "
                          f"(it names {head.key_id})")


def rpc_problem(error: grpc.RpcError) -> str:
    return f"{error.code().name}: {error.details()}"  # type: ignore[attr-defined]
