"""A platform's log entries as the audit trees hash them (docs/audit-format.md, "Entries").

The encoding is fixed, length-prefixed and big-endian, so that anyone can rebuild a leaf
from an exported entry in a few lines of any language, and so that no two different entries
encode alike (every variable-length field carries its length).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from uuid import UUID

from ledger.audit.merkle import leaf_hash

FORMAT_VERSION = 1
_VERSION_BYTE = bytes((FORMAT_VERSION,))
_HEAD = struct.Struct(">QQq")  # seq, position, recorded_at_us
_VERSION = struct.Struct(">Q")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


def encode_entry(platform: bytes, seq: int, position: int, recorded_at_us: int,
                 stream_id: bytes, version: int, topic: bytes, state: bytes) -> bytes:
    """The entry encoding from its fields as bytes (platform and topic UTF-8, the stream id
    the UUID's 16 bytes). A function of plain values so that a verifier reading a million
    entries need not make an object of each (``Entry.encode`` is this too)."""
    return b"".join((
        _VERSION_BYTE,
        _U16.pack(len(platform)), platform,
        _HEAD.pack(seq, position, recorded_at_us),
        stream_id,
        _VERSION.pack(version),
        _U16.pack(len(topic)), topic,
        _U32.pack(len(state)), state,
    ))


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
        return encode_entry(self.platform.encode(), self.seq, self.position,
                            self.recorded_at_us, self.stream_id.bytes, self.version,
                            self.topic.encode(), self.state)

    def leaf_hash(self) -> bytes:
        return leaf_hash(self.encode())


def now_us() -> int:
    """The time an entry is recorded at, or a head signed at: microseconds since the epoch."""
    return time.time_ns() // 1000


@dataclass(frozen=True)
class StoredEntry:
    """An entry as the audit tables hold it, with its leaf hash."""

    seq: int
    position: int
    recorded_at_us: int
    stream_id: UUID
    version: int
    topic: str
    state: bytes
    leaf_hash: bytes
