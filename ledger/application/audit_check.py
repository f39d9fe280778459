"""The check every server runs at start: the stored history still is the signed history.

The database's guards refuse rewrites, but a superuser can switch them off. So before it
serves, a server reads every platform's entries back from the log, recomputes each leaf from
the event as it now stands, and checks that (1) each equals the leaf recorded when the event
was written, (2) the recorded leaves reproduce the root of the platform's last signed head,
whose signature holds, and (3) every event in the log is some platform's entry. An event
altered or deleted, an entry's hashes rewritten to match, or an event slipped in around the
ledger: each is named (platform, seq, what differs) and the server refuses to start.

It reads the whole log once, in pages: a few seconds per million entries (README,
Performance), paid at start only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import structlog

from ledger.application.ports import AuditRecords
from ledger.audit.entries import Entry
from ledger.audit.merkle import EMPTY_ROOT, HASH_SIZE, Frontier
from ledger.audit.signing import TreeHead, verify_head
from ledger.config import ConfigError

log = structlog.get_logger(__name__)
PAGE = 10_000


class HistoryTampered(ConfigError):
    """The stored history differs from what was recorded and signed."""


@dataclass(frozen=True)
class Checked:
    platforms: int
    entries: int
    heads_verified: int


def check_history(audit: AuditRecords, keys: dict[str, bytes]) -> Checked:
    """Raises HistoryTampered naming the first difference; else says what it checked.
    ``keys``: key id → public key, of every key that may have signed."""
    entries = heads_verified = 0
    platforms = audit.platforms()
    for platform in platforms:
        heads = [TreeHead(platform, *row) for row in audit.heads(platform)]
        frontier, roots = Frontier(), {}
        wanted = {h.tree_size for h in heads}
        seq = 0
        while True:
            page = audit.entries_with_events(platform, seq, PAGE)
            for row in page:
                leaf = _checked_leaf(platform, row, expected_seq=seq)
                frontier.append(leaf)
                seq += 1
                if seq in wanted:
                    roots[seq] = frontier.root()
            if len(page) < PAGE:
                break
        entries += seq
        for head in heads:
            if not verify_head(head, keys):
                raise HistoryTampered(f"platform {platform}: the head of {head.tree_size} "
                                      f"entries signed {head.timestamp_us} does not verify "
                                      f"with key {head.key_id}: it was altered")
            root = roots.get(head.tree_size) if head.tree_size else EMPTY_ROOT
            if root != head.root:
                raise HistoryTampered(
                    f"platform {platform}: entries 0..{head.tree_size - 1} no longer give the "
                    f"root signed for them ({head.reason or 'a signed head'}): an entry's "
                    "recorded hashes were rewritten or an entry removed")
            heads_verified += 1
    strays = audit.events_outside_trees()
    if strays:
        position, topic = strays[0]
        raise HistoryTampered(f"the log holds an event no platform's tree has (position "
                              f"{position}, {topic}): it was written around the ledger")
    return Checked(len(platforms), entries, heads_verified)


def _checked_leaf(platform: str, row: tuple[Any, ...], expected_seq: int) -> bytes:
    seq, position, recorded_at, hashes, stream_id, version, topic, state = row
    hashes = bytes(hashes)
    recorded = hashes[:HASH_SIZE]
    if int(seq) != expected_seq:
        raise HistoryTampered(f"platform {platform}: entry {expected_seq} is missing from "
                              f"its tree (the next is {seq})")
    if stream_id is None:
        raise HistoryTampered(f"platform {platform}: entry {seq}'s event (log position "
                              f"{position}) is gone from the log: it was deleted")
    entry = Entry(platform, int(seq), int(position), int(recorded_at),
                  stream_id if isinstance(stream_id, UUID) else UUID(str(stream_id)),
                  int(version), topic, bytes(state))
    leaf = entry.leaf_hash()
    if leaf != recorded:
        raise HistoryTampered(f"platform {platform}: entry {seq} (log position {position}, "
                              f"{topic}, stream {entry.stream_id} version {version}) differs "
                              "from what was recorded: its event was altered")
    return leaf
