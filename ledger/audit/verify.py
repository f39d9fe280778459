"""`ledger audit verify`: the checks of docs/audit-format.md ("What verify checks") over a
platform's entries, signed heads and keys, needing nothing else.

The core is ``Verifier``: fed the header, keys, entries and heads one at a time (from an
export file, or from a live stream of the same records), it recomputes every leaf and the
tree over them as they pass, keeping only the tree's hashes (32 bytes a node, about 64 bytes
an entry, in a few bytearrays) and each entry's seq and line, never the entries. ``finish``
then checks the order of the entries, every signature, every signed root against the
recomputed tree and every later head's RFC 9162 consistency with the one before, with a
proof generated from the entries and checked by ``merkle.verify_consistency``. Its report
names the first problem first: the entry that was altered, dropped, inserted or moved (its
seq, and what differs) wherever it can be named.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from itertools import pairwise

from ledger.audit.entries import encode_entry
from ledger.audit.export_file import (
    EntryRecord,
    Header,
    HeadRecord,
    KeyRecord,
    Malformed,
    Record,
)
from ledger.audit.merkle import (
    HASH_SIZE,
    Frontier,
    Tree,
    consistency_proof,
    verify_consistency,
)
from ledger.audit.signing import key_id, verify_head

# Entries whose recorded leaf hash differs from the recomputed one, kept with what names
# them; beyond this many only counted (one is enough to name, the rest are told as a count).
KEPT_DIFFERENCES = 1000


@dataclass(frozen=True)
class Problem:
    check: int  # the check of docs/audit-format.md that found it (1-4)
    message: str
    entries: tuple[int, ...] = ()  # the seqs it names


@dataclass
class Report:
    platform: str
    entries: int  # entry lines read
    heads: int  # head lines read
    trusted: tuple[str, ...]  # the key ids heads were checked against
    keys_given: bool  # True: the caller's (published) keys; False: the file's own
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verified_size: int = 0  # entries [0, verified_size) are under a signed root that holds
    verified_head: HeadRecord | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class _Differing:
    """An entry whose recomputed leaf hash is not the one recorded beside it."""

    index: int
    seq: int
    line: int
    stream_id: bytes
    version: int
    topic: str

    def describe(self) -> str:
        stream = self.stream_id.hex()
        stream = f"{stream[:8]}-{stream[8:12]}-{stream[12:16]}-{stream[16:20]}-{stream[20:]}"
        return f"stream {stream}, version {self.version}, topic {self.topic}, line {self.line}"


class Verifier:
    """Checks one platform's export as its records arrive; ``finish`` gives the report.

    ``trusted_keys`` (key id → raw public key): the published keys heads must be signed
    with. None: the file's own keys, which show only that the file agrees with itself."""

    def __init__(self, trusted_keys: Mapping[str, bytes] | None = None) -> None:
        self._given = dict(trusted_keys) if trusted_keys is not None else None
        self._header: Header | None = None
        self._platform = b""
        self._file_keys: dict[str, bytes] = {}
        self._key_problems: list[Problem] = []
        self._malformed: list[Malformed] = []
        self._seqs = array("Q")
        self._lines = array("Q")
        self._tree = Tree()  # over the recomputed leaves
        self._recorded = bytearray()  # the leaf hashes as recorded in the file
        self._differing: list[_Differing] = []
        self._differing_count = 0
        self._heads: list[HeadRecord] = []

    # --- feeding ---------------------------------------------------------------------------

    def feed(self, record: Record) -> None:
        if type(record) is EntryRecord:
            self.entry(record)
        elif isinstance(record, HeadRecord):
            self.head(record)
        elif isinstance(record, KeyRecord):
            self.key(record)
        elif isinstance(record, Header):
            self.header(record)
        else:
            self.malformed(record)

    def header(self, header: Header) -> None:
        self._header = header
        self._platform = header.platform.encode()

    def key(self, record: KeyRecord) -> None:
        if key_id(record.public_key) != record.key_id:
            self._key_problems.append(Problem(
                2, f"the key on line {record.line} is named {record.key_id}, but its public "
                   f"key's id is {key_id(record.public_key)}"))
            return
        self._file_keys[record.key_id] = record.public_key

    def entry(self, e: EntryRecord) -> None:
        """The hot path: one leaf hash, one append to the tree, a few appends to arrays."""
        index = len(self._seqs)
        self._seqs.append(e.seq)
        self._lines.append(e.line)
        leaf = sha256(b"\x00" + encode_entry(
            self._platform, e.seq, e.position, e.recorded_at_us, e.stream_id, e.version,
            e.topic.encode(), e.state)).digest()
        self._recorded += e.leaf_hash
        if leaf != e.leaf_hash:
            self._differing_count += 1
            if len(self._differing) < KEPT_DIFFERENCES:
                self._differing.append(_Differing(index, e.seq, e.line, e.stream_id,
                                                  e.version, e.topic))
        self._tree.append(leaf)

    def head(self, record: HeadRecord) -> None:
        self._heads.append(record)

    def malformed(self, record: Malformed) -> None:
        self._malformed.append(record)

    # --- checking --------------------------------------------------------------------------

    def finish(self) -> Report:
        header = self._header
        if header is None:
            raise ValueError("no header was fed: an export starts with its header")
        trusted = self._given if self._given is not None else self._file_keys
        report = Report(header.platform, len(self._seqs), len(self._heads),
                        tuple(sorted(trusted)), self._given is not None)
        first = [Problem(1, f"line {m.line} is not a valid record: {m.message}",
                         (m.seq,) if m.seq is not None else ()) for m in self._malformed]
        in_order = self._seqs == array("Q", range(len(self._seqs)))
        order = self._order_problem(header.entries, in_order)
        if order is not None:
            first.append(order)
        if len(self._heads) != header.heads:
            first.append(Problem(1, f"the header counts {header.heads} heads; the file has "
                                    f"{len(self._heads)}"))
        signed, second = self._signatures(trusted)
        second += self._key_problems
        if in_order:
            holds = {id(h): self._root_holds(h) for h in signed}
            third = self._consistency(signed, holds)
            fourth = self._roots(signed, holds)
            good = [h for h in signed if holds[id(h)]]
            if good:
                report.verified_head = max(good, key=lambda h: (h.tree_size, h.timestamp_us))
                report.verified_size = report.verified_head.tree_size
        else:
            third, fourth = [], []
            report.notes.append("roots and consistency not checked: the entries are not in "
                                "seq order, so the tree over them is not the signed one")
        # The first problem is the most exact one: an entry named beats a head named.
        report.problems = (first + second + [p for p in fourth if p.entries] + third
                           + [p for p in fourth if not p.entries])
        if in_order and report.verified_size < len(self._seqs):
            report.notes.append(
                f"entries {report.verified_size}..{len(self._seqs) - 1} come after the last "
                "signed head that holds: no signature covers them")
        return report

    def _order_problem(self, announced: int, in_order: bool) -> Problem | None:
        """Check 1: seq runs 0, 1, 2, … and the file holds as many entries as its header
        says. The first place it does not is told as what it most simply is: an entry
        missing, one appearing twice, two swapped, one out of place, or one whose own seq
        was altered (the run goes on after it as if it were in its place)."""
        seqs, lines, count = self._seqs, self._lines, len(self._seqs)
        if in_order:
            if count < announced:
                return Problem(1, f"entry {count} missing: the file ends "
                                  f"{f'at entry {count - 1}' if count else 'before any entry'}"
                                  f", its header counts {announced} entries", (count,))
            if count > announced:
                return Problem(1, f"entry {announced} is one more than the header counts "
                                  f"({announced} entries): added at the end (line "
                                  f"{lines[announced]})", (announced,))
            return None
        i = next(n for n in range(count) if seqs[n] != n)
        seq, line = seqs[i], lines[i]
        try:
            later: int | None = seqs.index(i, i + 1)
        except ValueError:
            later = None
        # The run goes on after this line as if it stood in its place.
        in_place = (seqs[i + 1] == i + 1) if i + 1 < count else count == announced
        if later is None and in_place:
            return Problem(1, f"entry {i} altered: the line where it belongs (line {line}) "
                              f"says seq {seq}", (i,))
        if seq < i:
            return Problem(1, f"entry {seq} appears twice (lines {lines[seq]} and {line})",
                           (seq,))
        if later is None:
            gone = f"entry {i}" if seq == i + 1 else f"entries {i}..{seq - 1}"
            after = f"from {i - 1} to {seq}" if i else f"from the start to {seq}"
            return Problem(1, f"{gone} missing: seq jumps {after} (line {line})",
                           tuple(range(i, min(seq, i + 100))))
        if seq == later and seqs[later] == i:
            return Problem(1, f"entries {i} and {seq} swapped (lines {line} and "
                              f"{lines[later]})", (i, seq))
        return Problem(1, f"entries out of order: entry {seq} stands on line {line}, where "
                          f"entry {i} belongs; entry {i} is on line {lines[later]}", (i, seq))

    def _signatures(self, trusted: Mapping[str, bytes]) -> tuple[list[HeadRecord],
                                                                  list[Problem]]:
        """Check 2: the heads whose signatures hold, and a problem for each other one."""
        assert self._header is not None
        platform = self._header.platform
        signed, problems = [], []
        whose = "given with --key" if self._given is not None else "in the file"
        for number, record in enumerate(self._heads, 1):
            label = f"head {number} (size {record.tree_size}, line {record.line})"
            if record.key_id not in trusted:
                problems.append(Problem(2, f"{label} signed by unknown key {record.key_id}: "
                                           f"not among the keys {whose}"))
            elif not verify_head(record.head(platform), trusted):
                problems.append(Problem(2, f"{label}: its signature does not verify with key "
                                           f"{record.key_id}"))
            else:
                signed.append(record)
        if not self._heads:
            problems.append(Problem(2, "the file has no signed head: nothing in it is signed"))
        return signed, problems

    def _root_holds(self, head: HeadRecord) -> bool:
        return (head.tree_size <= len(self._seqs)
                and self._tree.root_at(head.tree_size) == head.root)

    def _consistency(self, signed: list[HeadRecord], holds: dict[int, bool]
                     ) -> list[Problem]:
        """Check 3: in the order they were signed, each head extends the one before: never
        smaller, and an RFC 9162 consistency proof made from the entries links the two
        roots. A proof from the entries fails wherever a root does not hold; it is told
        here when the later head holds (the entries are the ones it signed: the history
        the earlier head signed was rewritten after it), and left to check 4 when the
        later head fails (the entries are to blame). Told once, for the first pair that
        fails."""
        in_time = sorted(signed, key=lambda h: (h.timestamp_us, h.tree_size))
        failing = []
        for before, after in pairwise(in_time):
            if after.tree_size < before.tree_size:
                failing.append((before, after, "the tree shrank"))
            elif after.tree_size <= len(self._seqs):
                proof = consistency_proof(before.tree_size, after.tree_size, self._tree.node)
                if not verify_consistency(before.tree_size, after.tree_size, before.root,
                                          after.root, proof) and holds[id(after)]:
                    failing.append((before, after, "no RFC 9162 consistency proof from the "
                                                   "file's entries links their roots"))
        if not failing:
            return []
        before, after, why = failing[0]
        more = f"; {len(failing) - 1} later pair(s) fail too" if len(failing) > 1 else ""
        return [Problem(3, f"head (size {after.tree_size}, signed {when(after.timestamp_us)}, "
                           f"line {after.line}) does not extend head (size {before.tree_size}, "
                           f"signed {when(before.timestamp_us)}, line {before.line}): "
                           f"{why}{more}")]

    def _roots(self, signed: list[HeadRecord], holds: dict[int, bool]) -> list[Problem]:
        """Check 4: every signed root is the root of the file's first tree_size entries.
        The first head (by size) that fails is told with the entry to blame where the
        recorded leaf hashes show it; leaf hashes recorded wrongly under roots that hold
        are told too."""
        problems = []
        by_size = sorted(signed, key=lambda h: (h.tree_size, h.timestamp_us))
        failing = [h for h in by_size if not holds[id(h)]]
        count = len(self._seqs)
        if failing:
            head = failing[0]
            more = (f"; {len(failing) - 1} larger head(s) fail with it"
                    if len(failing) > 1 else "")
            good = max((h.tree_size for h in by_size
                        if holds[id(h)] and h.tree_size < head.tree_size), default=0)
            label = f"head (size {head.tree_size}, line {head.line})"
            if head.tree_size > count:
                problems.append(Problem(
                    4, f"entry {count} missing: {label} covers entries up to "
                       f"{head.tree_size - 1}, the file ends "
                       f"{f'at entry {count - 1}' if count else 'before any entry'}{more}",
                    (count,)))
            elif self._differing and self._recorded_root(head.tree_size) == head.root:
                # The recorded leaf hashes are the signed ones: the first entry whose own
                # hash is not its recorded one is the entry that changed.
                entry = self._differing[0]
                problems.append(Problem(
                    4, f"entry {entry.seq} altered: its recomputed leaf hash differs from the "
                       f"recorded one, which {label} signed ({entry.describe()}){more}",
                    (entry.seq,)))
            else:
                problems.append(Problem(
                    4, f"entries {good}..{head.tree_size - 1} do not match {label}, root "
                       f"{head.root.hex()}: one of them was altered after it was signed, its "
                       f"recorded leaf hash with it{more}"))
        covered = max((h.tree_size for h in by_size if holds[id(h)]), default=0)
        explained = {p.entries[0] for p in problems if p.entries}
        unexplained = [d for d in self._differing if d.seq not in explained]
        if unexplained:
            d = unexplained[0]
            if d.index < covered:
                what = (f"entry {d.seq}: the leaf_hash recorded beside it (line {d.line}) is "
                        "not its own, though the entry is the one a signed head holds: that "
                        "field was altered")
            else:
                what = (f"entry {d.seq} altered after the last signed head that holds: its "
                        f"recomputed leaf hash differs from the recorded one ({d.describe()})")
            rest = self._differing_count - (len(self._differing) - len(unexplained)) - 1
            problems.append(Problem(4, what + (f"; {rest} more such entries" if rest else ""),
                                    (d.seq,)))
        return problems

    def _recorded_root(self, size: int) -> bytes:
        frontier = Frontier()
        recorded = self._recorded
        for start in range(0, size * HASH_SIZE, HASH_SIZE):
            frontier.append(bytes(recorded[start:start + HASH_SIZE]))
        return frontier.root()


def verify(records: Iterable[Record], trusted_keys: Mapping[str, bytes] | None = None
           ) -> Report:
    """Verifies a platform's records (header first, then keys, entries, heads): from an
    export file (``export_file.read_export``) or any other source of the same records."""
    verifier = Verifier(trusted_keys)
    feed = verifier.feed
    for record in records:
        feed(record)
    return verifier.finish()


def when(timestamp_us: int) -> str:
    """A head's time as people read it (UTC)."""
    try:
        at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=timestamp_us)
    except OverflowError:
        return f"{timestamp_us} µs"
    return at.isoformat().replace("+00:00", "Z")
