"""Auditing offline: the entry and head bytes, the export file, and `verify` naming exactly
the entry that was altered, dropped, inserted or moved (docs/audit-format.md)."""

from __future__ import annotations

import base64
import io
import json
import struct
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.audit.entries import Entry
from ledger.audit.export_file import (
    EntryRecord,
    HeadRecord,
    KeyRecord,
    Malformed,
    NotAnExport,
    read_export,
    read_lines,
)
from ledger.audit.merkle import root_of
from ledger.audit.signing import KeyFileError, Signer, TreeHead, parse_public_key, verify_head
from ledger.audit.verify import Report, verify
from tests.audit_export import EXPORTED_AT_US, signed_heads, write

STREAM = UUID("6f6b1c4e-2b1e-4f55-9a55-5a1f0d2d7c11")


# --- the bytes that are hashed and signed ----------------------------------------------------


def test_an_entry_encodes_to_the_documented_bytes() -> None:
    entry = Entry("acme", 1, 17, 1764633600123456, STREAM, 2, "ledger.domain.order:Order.Paid",
                  b'{"a":1}')
    assert entry.encode() == bytes.fromhex(
        "01"  # format version
        "0004" "61636d65"  # u16 length, platform
        "0000000000000001"  # u64 seq
        "0000000000000011"  # u64 position
        "000644ecc6e4e240"  # i64 recorded_at_us
        "6f6b1c4e2b1e4f559a555a1f0d2d7c11"  # stream id, the UUID's 16 bytes
        "0000000000000002"  # u64 version
        "001e" + b"ledger.domain.order:Order.Paid".hex() +  # u16 length, topic
        "00000007" + b'{"a":1}'.hex())  # u32 length, state
    assert entry.leaf_hash().hex() == (
        "12e7c0b88a173ef5759bbe04b14a8b7805e14de4f5ceb4e6151a2c62e5edd605")


def test_a_tree_head_signs_the_documented_bytes() -> None:
    head = TreeHead("acme", 3, bytes(range(32)), 1764633600999999, "9f86d081884c7d65")
    assert head.message() == (b"s2b2c-ledger-tree-head/v1\x00" + b"\x00\x04acme"
                              + struct.pack(">Q", 3) + bytes(range(32))
                              + struct.pack(">q", 1764633600999999)
                              + b"\x00\x10" + b"9f86d081884c7d65")


def test_a_head_verifies_with_its_key_only_and_not_once_altered() -> None:
    signer, other = Signer.generate(), Signer.generate()
    head = signer.sign("acme", 5, bytes(32), 1764633600000000, "close 2026-11-21")
    keys = {signer.key_id: signer.public_key}
    assert verify_head(head, keys)
    # Another key: unknown, or claiming this key's id.
    assert not verify_head(head, {other.key_id: other.public_key})
    assert not verify_head(head, {signer.key_id: other.public_key})
    forged = other.sign("acme", 5, bytes(32), 1764633600000000)
    assert not verify_head(TreeHead(**{**forged.__dict__, "key_id": signer.key_id}), keys)
    for change in ({"tree_size": 6}, {"root": bytes(31) + b"\x01"}, {"platform": "acmf"},
                   {"timestamp_us": 1764633600000001},
                   {"signature": bytes([head.signature[0] ^ 1]) + head.signature[1:]}):
        assert not verify_head(TreeHead(**{**head.__dict__, **change}), keys), change
    # The reason is not signed: it says why, and proves nothing.
    assert verify_head(TreeHead(**{**head.__dict__, "reason": "on demand"}), keys)


def test_public_keys_are_read_as_people_pass_them_on(tmp_path: Path) -> None:
    signer = Signer.generate()
    raw = signer.public_key
    printed = json.dumps({"key_id": signer.key_id, "public_key": base64.b64encode(raw).decode()})
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    pem = Ed25519PublicKey.from_public_bytes(raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    for form in (raw.hex(), json.loads(printed)["public_key"], printed, pem, f"  {raw.hex()}\n"):
        assert parse_public_key(form) == raw
    signer.save(tmp_path / "key.pem")
    for bad, says in (((tmp_path / "key.pem").read_text(), "private key"),
                      ("abcd", "32 bytes"), ("not a key!", "neither base64 nor hex")):
        with pytest.raises(KeyFileError, match=says):
            parse_public_key(bad)


# --- the export file ---------------------------------------------------------------------------


def entry(seq: int, state: bytes = b'{"x":1}', topic: str = "ledger.domain.team:Reseller.Enrolled",
          platform: str = "acme") -> Entry:
    return Entry(platform, seq, 100 + seq * 3, 1764633600000000 + seq, STREAM, seq + 1, topic,
                 state)


def export_bytes(entries: list[Entry], heads: list[TreeHead], keys: list[bytes]) -> list[bytes]:
    out = io.BytesIO()
    from ledger.audit.export_file import write_export

    write_export(out, "acme", EXPORTED_AT_US, keys, ((e, None) for e in entries), heads,
                 entry_count=len(entries))
    return out.getvalue().splitlines(keepends=True)


def test_an_export_reads_back_as_it_was_written(tmp_path: Path) -> None:
    signer = Signer.generate()
    entries = [entry(n, state=bytes(range(n, 256))) for n in range(7)]
    heads = signed_heads(entries, signer, (3, 5))
    path = write(tmp_path / "acme.jsonl", entries, heads, [signer.public_key])
    header, key, *rest = list(read_export(path))
    assert (header.platform, header.entries, header.heads) == ("acme", 7, 3)  # type: ignore[union-attr]
    assert key == KeyRecord(signer.key_id, signer.public_key, 2)
    read = [r for r in rest if isinstance(r, EntryRecord)]
    assert [r.entry("acme") for r in read] == entries
    assert [r.leaf_hash for r in read] == [e.leaf_hash() for e in entries]
    assert [r.line for r in read] == list(range(3, 10))
    assert [r.head("acme") for r in rest if isinstance(r, HeadRecord)] == heads
    assert verify(read_export(path)).ok
    path.write_bytes(path.read_bytes() + b"\n")  # an editor's blank last line
    assert verify(read_export(path)).ok


def test_a_file_that_is_not_an_export_is_named_by_its_first_line(tmp_path: Path) -> None:
    for content, says in ((b"", "empty"), (b"hello\n", "not JSON"),
                          (b'{"type": "header", "format": "other/v1", "platform": "a", '
                           b'"exported_at_us": 0, "entries": 0, "heads": 0}\n', "other/v1"),
                          (b'{"type": "entry"}\n', "not a header")):
        path = tmp_path / "x.jsonl"
        path.write_bytes(content)
        with pytest.raises(NotAnExport, match=says) as refused:
            list(read_export(path))
        assert refused.value.line == 1
    with pytest.raises(NotAnExport, match="No such file"):
        list(read_export(tmp_path / "missing.jsonl"))


def test_a_line_that_is_not_a_record_is_named_with_its_line_number() -> None:
    signer = Signer.generate()
    entries = [entry(n) for n in range(3)]
    lines = export_bytes(entries, signed_heads(entries, signer), [signer.public_key])
    record = orjson.loads(lines[3])  # entry 1
    cases: dict[str, Callable[[], bytes]] = {
        "not JSON": lambda: lines[3][:40] + b"\n",
        "unknown fields extra": lambda: orjson.dumps({**record, "extra": 1}),
        "without state": lambda: orjson.dumps({k: v for k, v in record.items()
                                               if k != "state"}),
        "seq is -1": lambda: orjson.dumps({**record, "seq": -1}),
        "not a UUID": lambda: orjson.dumps({**record, "stream_id": "x"}),
        "state is not base64": lambda: orjson.dumps({**record, "state": "!!"}),
        "leaf_hash is": lambda: orjson.dumps({**record, "leaf_hash": "00"}),
        "a key record after the entries": lambda: lines[1],
    }
    for says, bad in cases.items():
        edited = [*lines[:3], bad(), *lines[4:]] if says != "a key record after the entries" \
            else [*lines[:4], bad(), *lines[4:]]
        records = list(read_lines(edited))
        [malformed] = [r for r in records if isinstance(r, Malformed)]
        assert malformed.line in (4, 5) and says in malformed.message, malformed
        report = verify(records)
        assert not report.ok and report.problems[0].check == 1
        assert f"line {malformed.line} is not a valid record" in report.problems[0].message
        if says != "a key record after the entries":  # the entry it damaged is named
            assert 1 in {seq for problem in report.problems for seq in problem.entries}


# --- verify -------------------------------------------------------------------------------------


def lines_of(report_lines: list[bytes]) -> Report:
    return verify(read_lines(report_lines))


def test_an_untouched_export_verifies_with_the_published_key_and_says_which_keys() -> None:
    signer = Signer.generate()
    entries = [entry(n) for n in range(10)]
    lines = export_bytes(entries, signed_heads(entries, signer, (1, 4, 9)), [signer.public_key])
    own = lines_of(lines)
    assert own.ok and not own.keys_given and own.verified_size == 10
    given = verify(read_lines(lines), {signer.key_id: signer.public_key})
    assert given.ok and given.keys_given and given.trusted == (signer.key_id,)
    other = Signer.generate()
    stranger = verify(read_lines(lines), {other.key_id: other.public_key})
    assert not stranger.ok
    assert stranger.problems[0].message.startswith("head 1 (size 1, line 13) signed by unknown "
                                                   f"key {signer.key_id}")


def test_a_head_signed_with_another_key_is_refused() -> None:
    signer, intruder = Signer.generate(), Signer.generate()
    entries = [entry(n) for n in range(6)]
    heads = signed_heads(entries, signer, (3,))
    forged = intruder.sign("acme", 6, heads[-1].root, heads[-1].timestamp_us + 1)
    # The intruder's key is not in the file: unknown.
    report = lines_of(export_bytes(entries, [*heads, forged], [signer.public_key]))
    assert [p.check for p in report.problems] == [2]
    assert f"signed by unknown key {intruder.key_id}" in report.problems[0].message
    # Named as the platform's key: the signature does not verify.
    posing = TreeHead(**{**forged.__dict__, "key_id": signer.key_id})
    report = lines_of(export_bytes(entries, [*heads, posing], [signer.public_key]))
    assert [p.check for p in report.problems] == [2]
    assert "signature does not verify" in report.problems[0].message
    # A key record whose id is not its key's.
    lines = export_bytes(entries, heads, [signer.public_key])
    record = orjson.loads(lines[1])
    lines[1] = orjson.dumps({**record, "public_key": base64.b64encode(
        intruder.public_key).decode()}) + b"\n"
    report = lines_of(lines)
    assert "is named " + signer.key_id in report.problems[-1].message


def test_a_head_that_does_not_extend_the_one_before_is_refused() -> None:
    """A fork: the log was rewritten (entry 2) after the head of size 4 was signed, and a
    later head signed over the rewritten log. The file holds the rewrite."""
    signer = Signer.generate()
    before = [entry(n) for n in range(8)]
    after = [*before[:2], entry(2, state=b'{"x":2}'), *before[3:]]
    early = signer.sign("acme", 4, root_of([e.leaf_hash() for e in before[:4]]), 1_000)
    late = signer.sign("acme", 8, root_of([e.leaf_hash() for e in after]), 2_000)
    report = lines_of(export_bytes(after, [early, late], [signer.public_key]))
    assert report.problems[0].check == 3
    assert report.problems[0].message.startswith(
        "head (size 8, signed 1970-01-01T00:00:00.002000Z, line 12) does not extend head "
        "(size 4, signed 1970-01-01T00:00:00.001000Z, line 11)")
    assert [p.check for p in report.problems] == [3, 4]  # and the early root fails
    assert report.verified_size == 8


def test_a_smaller_head_signed_after_a_larger_one_is_refused() -> None:
    """A rollback: both roots are true of the entries, but the tree shrank between them."""
    signer = Signer.generate()
    entries = [entry(n) for n in range(8)]
    leaves = [e.leaf_hash() for e in entries]
    big = signer.sign("acme", 8, root_of(leaves), 1_000)
    small = signer.sign("acme", 5, root_of(leaves[:5]), 2_000)
    report = lines_of(export_bytes(entries, [big, small], [signer.public_key]))
    assert len(report.problems) == 1 and report.problems[0].check == 3
    assert "head (size 5" in report.problems[0].message
    assert report.problems[0].message.endswith("the tree shrank")


def test_an_export_without_heads_or_with_entries_after_the_last_proves_only_what_is_signed(
) -> None:
    signer = Signer.generate()
    entries = [entry(n) for n in range(5)]
    unsigned = lines_of(export_bytes(entries, [], [signer.public_key]))
    assert [p.message for p in unsigned.problems] == [
        "the file has no signed head: nothing in it is signed"]
    head = signer.sign("acme", 3, root_of([e.leaf_hash() for e in entries[:3]]), 1_000)
    tail = lines_of(export_bytes(entries, [head], [signer.public_key]))
    assert tail.ok and tail.verified_size == 3
    assert tail.notes == ["entries 3..4 come after the last signed head that holds: no "
                          "signature covers them"]
    # A head taken out of the file (the one covering everything) is missed by the header.
    last = signer.sign("acme", 5, root_of([e.leaf_hash() for e in entries]), 2_000)
    lines = export_bytes(entries, [head, last], [signer.public_key])
    assert lines_of(lines).ok
    report = lines_of(lines[:-1])
    assert [p.message for p in report.problems] == ["the header counts 2 heads; the file has 1"]


def test_the_last_entry_dropped_is_named_by_the_header_and_by_the_head_over_it() -> None:
    signer = Signer.generate()
    entries = [entry(n) for n in range(6)]
    lines = export_bytes(entries, signed_heads(entries, signer, (3,)), [signer.public_key])
    del lines[2 + 5]
    report = lines_of(lines)
    assert [(p.check, p.entries) for p in report.problems] == [(1, (5,)), (4, (5,))]
    assert report.problems[0].message == ("entry 5 missing: the file ends at entry 4, its "
                                          "header counts 6 entries")
    assert report.problems[1].message.startswith("entry 5 missing: head (size 6, line 9) "
                                                 "covers entries up to 5")
    assert report.verified_size == 3  # the rest is still checked: the entries are in order


def test_an_entry_altered_with_its_recorded_hash_is_found_between_two_heads() -> None:
    """A careful forger rewrites an entry and its leaf_hash: no recorded hash gives it away,
    so the entries between the last head that holds and the first that fails are named."""
    signer = Signer.generate()
    entries = [entry(n) for n in range(10)]
    lines = export_bytes(entries, signed_heads(entries, signer, (4, 8)), [signer.public_key])
    forged = entry(5, state=b'{"x":9}')
    lines[2 + 5] = export_bytes([*entries[:5], forged], [], [signer.public_key])[2 + 5]
    report = lines_of(lines)
    assert [p.message.split(":")[0] for p in report.problems] == [
        "entries 4..7 do not match head (size 8, line 14), root "
        + signed_heads(entries, signer, (4, 8))[1].root.hex()]
    assert report.problems[0].message.endswith("; 1 larger head(s) fail with it")
    assert report.verified_size == 4


# The hypothesis test: a random log, one tampering, and the entry it touched named first.
FIELDS = ("seq", "position", "recorded_at_us", "version", "stream_id", "topic", "state",
          "leaf_hash")
logs = st.lists(st.tuples(st.binary(min_size=1, max_size=40),
                          st.sampled_from(["ledger.domain.order:Order.Paid",
                                           "ledger.domain.team:Reseller.Enrolled"]),
                          st.uuids()),
                min_size=1, max_size=40)


def flip_byte(value: bytes, at: int, mask: int) -> bytes:
    at %= len(value)
    return value[:at] + bytes([value[at] ^ mask]) + value[at + 1:]


def altered(record: dict[str, object], field: str, at: int, mask: int) -> dict[str, object]:
    """The entry with one byte of one field changed: of its value's bytes for the byte
    fields, of its 8-byte big-endian form for the integers, of its text for the topic."""
    value = record[field]
    if field == "state":
        new: object = base64.b64encode(flip_byte(base64.b64decode(str(value)), at, mask)).decode()
    elif field == "leaf_hash":
        new = flip_byte(bytes.fromhex(str(value)), at, mask).hex()
    elif field == "stream_id":
        new = str(UUID(bytes=flip_byte(UUID(str(value)).bytes, at, mask)))
    elif field == "topic":
        new = flip_byte(str(value).encode(), at, mask & 0x3F or 1).decode("ascii")
    else:
        signed = field == "recorded_at_us"
        raw = int(value).to_bytes(8, "big", signed=signed)  # type: ignore[call-overload]
        new = int.from_bytes(flip_byte(raw, at, mask), "big", signed=signed)
    return {**record, field: new}


@settings(max_examples=300, deadline=None)
@given(log=logs, data=st.data())
def test_verify_names_exactly_the_entry_that_was_altered_dropped_inserted_or_moved(
        log: list[tuple[bytes, str, UUID]], data: st.DataObject) -> None:
    signer = Signer.generate()
    entries = [Entry("acme", n, 10 + n, 1764633600000000 + n, stream, 1, topic, state)
               for n, (state, topic, stream) in enumerate(log)]
    sizes = data.draw(st.lists(st.integers(0, len(entries)), max_size=3))
    lines = export_bytes(entries, signed_heads(entries, signer, sizes), [signer.public_key])
    assert lines_of(lines).ok
    first = 2  # the header and the key come before entry 0
    tamper = data.draw(st.sampled_from(["alter", "drop", "insert", "swap"]))
    if tamper == "alter":
        k = data.draw(st.integers(0, len(entries) - 1))
        field = data.draw(st.sampled_from(FIELDS))
        record = altered(orjson.loads(lines[first + k]), field, data.draw(st.integers(0, 63)),
                         data.draw(st.integers(1, 255)))
        lines[first + k] = orjson.dumps(record) + b"\n"
        named: set[int] = {k}
    elif tamper == "drop":
        k = data.draw(st.integers(0, len(entries) - 1))
        del lines[first + k]
        named = {k}
    elif tamper == "insert":
        k = data.draw(st.integers(0, len(entries)))
        stranger = Entry("acme", k, 999, 1764633600000000, STREAM, 1, "x:Y.Z",
                         data.draw(st.binary(max_size=20)))
        lines.insert(first + k, export_bytes([*entries[:k], stranger], [],
                                             [signer.public_key])[first + k])
        named = {k}
    else:
        if len(entries) < 2:
            return
        i = data.draw(st.integers(0, len(entries) - 2))
        j = data.draw(st.integers(i + 1, len(entries) - 1))
        lines[first + i], lines[first + j] = lines[first + j], lines[first + i]
        named = {i, j}
    report = lines_of(lines)
    assert not report.ok
    problem = report.problems[0]
    assert set(problem.entries) == named, (tamper, problem, report.problems)
    for seq in named:
        assert f"entry {seq}" in problem.message or f"entries {min(named)} and" in \
            problem.message, problem.message
