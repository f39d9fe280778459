"""A platform's log entries as the audit trees hash them (docs/audit-format.md, "Entries").

The encoding is fixed, length-prefixed and big-endian, so that anyone can rebuild a leaf
from an exported entry in a few lines of any language, and so that no two different entries
encode alike (every variable-length field carries its length).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from uuid import UUID

from ledger.audit.merkle import leaf_hash

FORMAT_VERSION = 1
_HEAD = struct.Struct(">QQq")  # seq, position, recorded_at_us
_VERSION = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class Entry:
    platform: str
    seq: int  # 0, 1, 2, … within the platform: the leaf's index
    position: int  # the event's position in the whole log
    recorded_at_us: int  # when the ledger recorded it, µs since the epoch (UTC)
    stream_id: UUID  # the aggregate the event belongs to
    version: int  # the event's version in its stream
    topic: str  # the event's type
    state: bytes  # the event exactly as stored

    def encode(self) -> bytes:
        platform = self.platform.encode()
        topic = self.topic.encode()
        return b"".join((
            bytes((FORMAT_VERSION,)),
            struct.pack(">H", len(platform)), platform,
            _HEAD.pack(self.seq, self.position, self.recorded_at_us),
            self.stream_id.bytes,
            _VERSION.pack(self.version),
            struct.pack(">H", len(topic)), topic,
            struct.pack(">I", len(self.state)), self.state,
        ))

    def leaf_hash(self) -> bytes:
        return leaf_hash(self.encode())
