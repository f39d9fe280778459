"""The export file: one platform's entries, signed heads and public keys, as JSON Lines
(docs/audit-format.md, "The export file").

Written and read one line at a time: a million entries go through without a million
objects held at once. The reader checks every line against the format and says which line
is wrong; the header must come first and be ours, or the file is not an export at all
(``NotAnExport``). Any later line that is not a well-formed record is handed on as
``Malformed``, so that ``verify`` can name it as a problem (the file was damaged or edited)
and go on with the rest.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple
from uuid import UUID

import orjson

from ledger.audit.entries import Entry
from ledger.audit.signing import TreeHead, key_id

FORMAT = "s2b2c-ledger-audit/v1"
ALGORITHM = "ed25519"

U64 = 1 << 64
I64 = 1 << 63

HEADER_FIELDS = ("type", "format", "platform", "exported_at_us", "entries", "heads")
KEY_FIELDS = ("type", "key_id", "algorithm", "public_key")
ENTRY_FIELDS = ("type", "seq", "position", "recorded_at_us", "stream_id", "version", "topic",
                "state", "leaf_hash")
HEAD_FIELDS = ("type", "tree_size", "root", "timestamp_us", "key_id", "signature", "reason")
_FIELDS = {"header": frozenset(HEADER_FIELDS), "key": frozenset(KEY_FIELDS),
           "entry": frozenset(ENTRY_FIELDS), "head": frozenset(HEAD_FIELDS)}
SECTIONS = ("header", "key", "entry", "head")  # the order records come in
PLURALS = ("headers", "keys", "entries", "heads")



class NotAnExport(ValueError):
    """The file does not start with an export's header (or cannot be read at all)."""

    def __init__(self, line: int, message: str) -> None:
        """``line`` 0: the file could not be read at all."""
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


class RecordError(ValueError):
    """One line that is not a well-formed record; its message names the field."""


@dataclass(frozen=True)
class Header:
    platform: str
    exported_at_us: int
    entries: int  # how many entry lines follow the keys
    heads: int  # how many head lines end the file
    line: int = 1


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    public_key: bytes  # the raw 32-byte Ed25519 public key
    line: int = 0


class EntryRecord(NamedTuple):
    """One entry line: the entry's fields as its encoding takes them (the stream id as its
    16 bytes) and the leaf hash the ledger recorded for it. A tuple, cheap to make a million
    of; ``entry()`` gives the ``Entry``."""

    seq: int
    position: int
    recorded_at_us: int
    stream_id: bytes
    version: int
    topic: str
    state: bytes
    leaf_hash: bytes  # as the ledger recorded it: not trusted by itself
    line: int = 0

    def entry(self, platform: str) -> Entry:
        return Entry(platform, self.seq, self.position, self.recorded_at_us,
                     UUID(bytes=self.stream_id), self.version, self.topic, self.state)


@dataclass(frozen=True)
class HeadRecord:
    tree_size: int
    root: bytes
    timestamp_us: int
    key_id: str
    signature: bytes
    reason: str = ""
    line: int = 0

    def head(self, platform: str) -> TreeHead:
        return TreeHead(platform, self.tree_size, self.root, self.timestamp_us, self.key_id,
                        self.signature, self.reason)


@dataclass(frozen=True)
class Malformed:
    """A line after the header that is not a record of the format, or out of its place."""

    line: int
    message: str
    seq: int | None = None  # the seq it claims, when it can be read


Record = Header | KeyRecord | EntryRecord | HeadRecord | Malformed


# --- reading ------------------------------------------------------------------------------


def read_export(path: Path) -> Iterator[Record]:
    """The records of the export at ``path``, one line at a time."""
    try:
        stream = path.open("rb")
    except OSError as error:
        raise NotAnExport(0, f"{path}: {error.strerror or error}") from None
    with stream:
        yield from read_lines(stream)


def read_lines(lines: Iterable[bytes]) -> Iterator[Record]:
    """Records from the lines of an export. Raises ``NotAnExport`` unless the first line is
    an export header; every later line is a record or ``Malformed`` (blank lines are passed
    over)."""
    numbered = enumerate(lines, 1)
    first = next(numbered, None)
    if first is None:
        raise NotAnExport(1, "the file is empty; an export starts with its header")
    try:
        yield parse_header(first[1])
    except RecordError as error:
        raise NotAnExport(1, f"not an export header ({error})") from None
    section = 0
    for number, raw in numbered:
        if raw.isspace():  # a blank line (an editor's last newline) holds nothing to check
            continue
        try:
            record = parse_record(raw, number)
        except RecordError as error:
            yield Malformed(number, str(error), claimed_seq(raw))
            continue
        kind = _SECTION[type(record)]
        if kind != section:
            if kind < section:
                yield Malformed(number, f"a {SECTIONS[kind]} record after the "
                                        f"{PLURALS[section]} (the order is header, keys, "
                                        "entries, heads)", getattr(record, "seq", None))
                continue
            section = kind
        yield record


_SECTION: dict[type, int] = {KeyRecord: 1, EntryRecord: 2, HeadRecord: 3}


def parse_header(raw: bytes) -> Header:
    fields = _fields(raw, "header")
    if fields["format"] != FORMAT:
        raise RecordError(f"format is {fields['format']!r}, not {FORMAT!r}")
    return Header(_text(fields, "platform"), _int(fields, "exported_at_us", I64, signed=True),
                  _int(fields, "entries", U64), _int(fields, "heads", U64))


def parse_record(raw: bytes, line: int) -> Record:
    """One line after the header. The entry comes first and is checked with as few steps as
    can be: it is nearly every line of the file."""
    try:
        fields = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise RecordError(f"not JSON ({error})") from None
    if type(fields) is not dict:
        raise RecordError("not a JSON object")
    kind = fields.get("type")
    if kind == "entry":
        return _entry(fields, line)
    if kind == "head":
        _check_fields(fields, "head")
        return HeadRecord(_int(fields, "tree_size", U64), _hash(fields, "root"),
                          _int(fields, "timestamp_us", I64, signed=True),
                          _key_id(fields), _base64(fields, "signature", 64),
                          _text(fields, "reason"), line)
    if kind == "key":
        _check_fields(fields, "key")
        if fields["algorithm"] != ALGORITHM:
            raise RecordError(f"algorithm is {fields['algorithm']!r}, not {ALGORITHM!r}")
        return KeyRecord(_key_id(fields), _base64(fields, "public_key", 32), line)
    if kind == "header":
        _check_fields(fields, "header")
        raise RecordError("a second header")
    raise RecordError(f"type is {kind!r}; a record is a header, key, entry or head")


def _entry(f: dict[str, Any], line: int) -> EntryRecord:
    if f.keys() != _FIELDS["entry"]:
        _check_fields(f, "entry")
    seq, position, at, version = f["seq"], f["position"], f["recorded_at_us"], f["version"]
    topic, stream_id = f["topic"], f["stream_id"]
    # The common case in one test; a value that fails it is looked at again, field by
    # field, for a message naming it.
    if (type(seq) is int and type(position) is int and type(at) is int
            and type(version) is int and 0 <= seq < U64 and 0 <= position < U64
            and -I64 <= at < I64 and 0 <= version < U64 and type(topic) is str
            and type(stream_id) is str and len(stream_id) == 36
            and stream_id[8] == stream_id[13] == stream_id[18] == stream_id[23] == "-"):
        try:
            uuid = bytes.fromhex(stream_id.replace("-", ""))
        except ValueError:
            uuid = b""
        if len(uuid) == 16:
            return EntryRecord(seq, position, at, uuid, version, topic, _base64(f, "state"),
                               _hash(f, "leaf_hash"), line)
    for name in ("seq", "position", "version"):
        _int(f, name, U64)
    _int(f, "recorded_at_us", I64, signed=True)
    _text(f, "topic")
    raise RecordError(f"stream_id is {stream_id!r}, not a UUID (8-4-4-4-12 hex digits)")


def _fields(raw: bytes, kind: str) -> dict[str, Any]:
    try:
        fields = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise RecordError(f"not JSON ({error})") from None
    if type(fields) is not dict or fields.get("type") != kind:
        raise RecordError(f"not a {kind} record")
    _check_fields(fields, kind)
    return fields


def _check_fields(fields: dict[str, Any], kind: str) -> None:
    missing = sorted(_FIELDS[kind] - fields.keys())
    unknown = sorted(fields.keys() - _FIELDS[kind])
    if missing:
        raise RecordError(f"the {kind} record is without {', '.join(missing)}")
    if unknown:
        raise RecordError(f"the {kind} record has unknown fields {', '.join(unknown)}")


def _int(fields: dict[str, Any], name: str, bound: int, signed: bool = False) -> int:
    value = fields[name]
    low = -bound if signed else 0
    if type(value) is not int or not low <= value < bound:
        kind = "a signed 64-bit integer" if signed else "an unsigned 64-bit integer"
        raise RecordError(f"{name} is {value!r}, not {kind}")
    return value


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields[name]
    if type(value) is not str:
        raise RecordError(f"{name} is {value!r}, not a string")
    return value


def _key_id(fields: dict[str, Any]) -> str:
    value = _text(fields, "key_id")
    if not value.isascii() or not value:
        raise RecordError(f"key_id {value!r} is not an ASCII key id")
    return value


def _hash(fields: dict[str, Any], name: str) -> bytes:
    value = fields[name]
    if type(value) is str and len(value) == 64:
        try:
            digest = bytes.fromhex(value)
        except ValueError:
            digest = b""
        if len(digest) == 32:  # (white space, which fromhex passes over, leaves it shorter)
            return digest
    raise RecordError(f"{name} is {value!r}, not 64 hex digits (SHA-256)")


def _base64(fields: dict[str, Any], name: str, size: int | None = None) -> bytes:
    value = fields[name]
    if type(value) is not str:
        raise RecordError(f"{name} is {value!r}, not a base64 string")
    try:
        data = binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError) as error:
        raise RecordError(f"{name} is not base64 ({error})") from None
    if size is not None and len(data) != size:
        raise RecordError(f"{name} holds {len(data)} bytes, not {size}")
    return data


def claimed_seq(raw: bytes) -> int | None:
    """The seq a malformed entry line still shows, if any: to name the entry it damaged."""
    match = re.search(rb'"seq"\s*:\s*(\d{1,20})', raw)
    return int(match.group(1)) if match else None


# --- writing ------------------------------------------------------------------------------


class ExportWriter:
    """Writes an export one record at a time, in the format's order: the header (with the
    counts the caller announces), every key, every entry by seq from 0, every head by tree
    size and time. Refuses anything out of that order, and on ``close`` a count that does
    not match the header's: a broken export is never written quietly."""

    def __init__(self, out: IO[bytes], platform: str, exported_at_us: int, *, entries: int,
                 heads: int) -> None:
        self._out = out
        self.platform = platform
        self._announced = (entries, heads)
        self._section = 0
        self._entries = 0
        self._heads = 0
        self._last_head: tuple[int, int] | None = None
        self._write({"type": "header", "format": FORMAT, "platform": platform,
                     "exported_at_us": exported_at_us, "entries": entries, "heads": heads})

    def key(self, public_key: bytes) -> None:
        self._enter(1, "key")
        self._write({"type": "key", "key_id": key_id(public_key), "algorithm": ALGORITHM,
                     "public_key": _b64(public_key)})

    def entry(self, entry: Entry, leaf_hash: bytes | None = None) -> None:
        """``leaf_hash``: as the ledger recorded it (by default, the entry's own)."""
        self._enter(2, "entry")
        if entry.platform != self.platform:
            raise ValueError(f"entry {entry.seq} is of platform {entry.platform!r}, "
                             f"not {self.platform!r}")
        if entry.seq != self._entries:
            raise ValueError(f"entry {entry.seq} where entry {self._entries} comes next")
        self._write({"type": "entry", "seq": entry.seq, "position": entry.position,
                     "recorded_at_us": entry.recorded_at_us, "stream_id": str(entry.stream_id),
                     "version": entry.version, "topic": entry.topic,
                     "state": _b64(entry.state),
                     "leaf_hash": (leaf_hash or entry.leaf_hash()).hex()})
        self._entries += 1

    def head(self, head: TreeHead) -> None:
        self._enter(3, "head")
        if head.platform != self.platform:
            raise ValueError(f"a head of platform {head.platform!r}, not {self.platform!r}")
        order = (head.tree_size, head.timestamp_us)
        if self._last_head is not None and order < self._last_head:
            raise ValueError("heads are written by tree size, then time")
        self._last_head = order
        self._write({"type": "head", "tree_size": head.tree_size, "root": head.root.hex(),
                     "timestamp_us": head.timestamp_us, "key_id": head.key_id,
                     "signature": _b64(head.signature), "reason": head.reason})
        self._heads += 1

    def close(self) -> None:
        """Checks that the file holds what its header announced."""
        if (self._entries, self._heads) != self._announced:
            raise ValueError(f"the header announced {self._announced[0]} entries and "
                             f"{self._announced[1]} heads; {self._entries} and {self._heads} "
                             "were written")
        self._out.flush()

    def _enter(self, section: int, kind: str) -> None:
        if section < self._section:
            raise ValueError(f"a {kind} after the {PLURALS[self._section]}")
        self._section = section

    def _write(self, record: dict[str, Any]) -> None:
        self._out.write(orjson.dumps(record) + b"\n")


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode()


def write_export(out: IO[bytes], platform: str, exported_at_us: int,
                 public_keys: Iterable[bytes], entries: Iterable[tuple[Entry, bytes | None]],
                 heads: Iterable[TreeHead], *, entry_count: int) -> None:
    """A whole export in one call: for tests and small platforms (the heads are listed
    first to count them; entries stream through)."""
    heads = sorted(heads, key=lambda h: (h.tree_size, h.timestamp_us))
    writer = ExportWriter(out, platform, exported_at_us, entries=entry_count,
                          heads=len(heads))
    for public_key in public_keys:
        writer.key(public_key)
    for entry, leaf in entries:
        writer.entry(entry, leaf)
    for head in heads:
        writer.head(head)
    writer.close()
