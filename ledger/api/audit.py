"""The AuditService: a platform's log, its signed tree heads, and proofs over them.

Auditor and finance keys only: the log holds every storefront's orders, which storefronts
must not see of each other. Everything is the caller's platform's.
"""

from __future__ import annotations

import asyncio

import grpc

from ledger.api import convert
from ledger.api.auth import AUDITOR, FINANCE
from ledger.api.servicers import Base, rpc
from ledger.application.audit_trail import AuditTrail
from ledger.domain.errors import InvalidInput
from ledger.v1 import audit_pb2, audit_pb2_grpc

AUDIT_KEYS = (AUDITOR, FINANCE)
DEFAULT_PAGE = 1_000
MAX_PAGE = 10_000
FOLLOW_POLL = 0.2  # seconds between looks for new entries while following
MAX_SIZE = 2**63 - 1  # seqs and sizes are uint64 on the wire, int64 in the store


def sizes(**fields: int) -> None:
    """Refuses a seq or size no tree can reach (the store's integers are 64-bit signed)."""
    too_big = [(name, f"at most {MAX_SIZE}") for name, value in fields.items()
               if value > MAX_SIZE]
    if too_big:
        raise InvalidInput(too_big)


class AuditService(Base, audit_pb2_grpc.AuditServiceServicer):
    @property
    def trail(self) -> AuditTrail:
        assert self.audit is not None, "the server gives its AuditService an audit trail"
        return self.audit

    @rpc(*AUDIT_KEYS)
    async def StreamEvents(self, request, context: grpc.aio.ServicerContext,  # type: ignore[no-untyped-def]
                           caller) -> None:
        if request.page_size > MAX_PAGE:
            raise InvalidInput([("page_size", f"at most {MAX_PAGE}")])
        sizes(from_seq=request.from_seq)
        size = request.page_size or DEFAULT_PAGE
        platform = caller.platform_id
        seq = request.from_seq
        while True:
            entries = await self.read(self.trail.entries, platform, seq, size)
            if entries:
                seq = entries[-1].seq + 1
                await context.write(audit_pb2.StreamEventsResponse(
                    entries=[audit_pb2.AuditEntry(
                        seq=e.seq, log_position=e.position, recorded_at_us=e.recorded_at_us,
                        stream_id=e.stream_id.bytes, version=e.version, topic=e.topic,
                        state=e.state, leaf_hash=e.leaf_hash) for e in entries],
                    tree_size=seq))
            if len(entries) < size:
                if not request.follow:
                    return
                await asyncio.sleep(FOLLOW_POLL)

    @rpc(*AUDIT_KEYS)
    async def GetSignedHead(self, request, context, caller):  # type: ignore[no-untyped-def]
        head = await self.read(self.trail.current_head, caller.platform_id)
        return audit_pb2.GetSignedHeadResponse(head=convert.tree_head(head))

    @rpc(*AUDIT_KEYS)
    async def ListSignedHeads(self, request, context, caller):  # type: ignore[no-untyped-def]
        heads = await self.read(self.trail.heads, caller.platform_id)
        return audit_pb2.ListSignedHeadsResponse(heads=[convert.tree_head(h) for h in heads])

    @rpc(*AUDIT_KEYS)
    async def GetInclusionProof(self, request, context, caller):  # type: ignore[no-untyped-def]
        sizes(seq=request.seq, tree_size=request.tree_size)
        proof = await self.read(self.trail.inclusion, caller.platform_id, request.seq,
                                request.tree_size)
        return audit_pb2.GetInclusionProofResponse(
            seq=proof.seq, tree_size=proof.tree_size, leaf_hash=proof.leaf_hash,
            path=proof.path, root=proof.root)

    @rpc(*AUDIT_KEYS)
    async def GetConsistencyProof(self, request, context, caller):  # type: ignore[no-untyped-def]
        sizes(first_size=request.first_size, second_size=request.second_size)
        proof = await self.read(self.trail.consistency, caller.platform_id,
                                request.first_size, request.second_size)
        return audit_pb2.GetConsistencyProofResponse(
            first_size=proof.first_size, second_size=proof.second_size,
            first_root=proof.first_root, second_root=proof.second_root, path=proof.path)

    @rpc(*AUDIT_KEYS)
    async def GetPublicKeys(self, request, context, caller):  # type: ignore[no-untyped-def]
        keys = await self.read(self.trail.keys)
        return audit_pb2.GetPublicKeysResponse(keys=[
            audit_pb2.PublicKey(key_id=key_id, algorithm="ed25519", public_key=public,
                                current=key_id == self.trail.signer.key_id)
            for key_id, public in keys.items()])
