"""A test's stand-in for the server's export: a one-platform store's events as an export
file, numbered in log order and signed with a test key."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from uuid import UUID

import orjson

from ledger.application.ledger_app import LedgerApplication
from ledger.audit.entries import Entry
from ledger.audit.export_file import write_export
from ledger.audit.merkle import root_of
from ledger.audit.signing import Signer, TreeHead

EXPORTED_AT_US = 1_800_000_000_000_000


def stored_entries(app: LedgerApplication, platform: str = "acme") -> Iterator[Entry]:
    """Every stored event, in log order, as one platform's entries (the store holds that
    platform alone). Recorded at: the library's timestamp of the event."""
    start, seq = 1, 0
    while batch := app.recorder.select_notifications(start, 500):
        for stored in batch:
            stamp = orjson.loads(stored.state)["timestamp"]["_data_"]
            recorded_at = int(datetime.fromisoformat(stamp).timestamp() * 1_000_000)
            yield Entry(platform, seq, stored.id, recorded_at, UUID(str(stored.originator_id)),
                        stored.originator_version, stored.topic, stored.state)
            seq += 1
        start = batch[-1].id + 1


def signed_heads(entries: Sequence[Entry], signer: Signer, sizes: Sequence[int] = ()
                 ) -> list[TreeHead]:
    """A head at each size (and at the whole log), signed in size order a second apart."""
    leaves = [entry.leaf_hash() for entry in entries]
    platform = entries[0].platform if entries else "acme"
    return [signer.sign(platform, size, root_of(leaves[:size]),
                        EXPORTED_AT_US - 10**9 * (100 - n), f"test head {n}")
            for n, size in enumerate(sorted({*sizes, len(entries)}))]


def write(path: Path, entries: Sequence[Entry], heads: Sequence[TreeHead],
          public_keys: Sequence[bytes], platform: str = "acme") -> Path:
    with path.open("wb") as out:
        write_export(out, platform, EXPORTED_AT_US, public_keys,
                     ((entry, None) for entry in entries), heads, entry_count=len(entries))
    return path


def export_store(app: LedgerApplication, path: Path, signer: Signer,
                 head_sizes: Sequence[int] = ()) -> list[Entry]:
    """The store's log as an export at ``path``, signed by ``signer``; returns its entries."""
    entries = list(stored_entries(app))
    write(path, entries, signed_heads(entries, signer, head_sizes), [signer.public_key])
    return entries
