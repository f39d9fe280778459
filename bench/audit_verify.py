"""How fast `ledger audit verify` checks an export, on a synthetic one.

    python -m bench.audit_verify --entries 1000000

Writes an export of that many entries (events of the sizes the ledger stores: a payment's
1.4 KB, idempotency records, enrollments…), signed with a head every 10,000 entries, to a
temporary file; then times `verify` over it as the CLI runs it, from reading the file to the
report, and prints the rate. The short benchmark (`python -m bench`) runs it on a small one.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from ledger.audit.entries import Entry
from ledger.audit.export_file import ExportWriter, read_export
from ledger.audit.merkle import Frontier
from ledger.audit.signing import Signer
from ledger.audit.verify import verify

HEAD_EVERY = 10_000
# (topic, stored size in bytes), in the proportions of the benchmark's workload: an order
# placed, paid, completed, each with its idempotency record, and the odd enrollment.
KINDS = (("ledger.domain.order:Order.Placed", 400), ("ledger.domain.order:Order.Paid", 1400),
         ("ledger.domain.order:Order.Completed", 160),
         ("ledger.application.idempotency:IdempotencyRecord.Recorded", 410),
         ("ledger.application.idempotency:IdempotencyRecord.Recorded", 410),
         ("ledger.application.idempotency:IdempotencyRecord.Recorded", 410),
         ("ledger.domain.team:Reseller.Enrolled", 290))


def write_synthetic(path: Path, count: int, platform: str = "bench") -> Signer:
    """An export of ``count`` entries; returns the key that signed its heads."""
    signer = Signer.generate()
    heads = sorted({*range(HEAD_EVERY, count, HEAD_EVERY), count})
    frontier = Frontier()
    streams = [uuid.uuid4() for _ in range(1000)]
    with path.open("wb") as out:
        writer = ExportWriter(out, platform, time.time_ns() // 1000, entries=count,
                              heads=len(heads))
        writer.key(signer.public_key)
        signed = []
        for seq in range(count):
            topic, size = KINDS[seq % len(KINDS)]
            state = orjson.dumps({"timestamp": seq, "n": "x" * (size - 40)})
            entry = Entry(platform, seq, seq + 1, 1764633600000000 + seq,
                          streams[seq % len(streams)], seq // 1000 + 1, topic, state)
            leaf = entry.leaf_hash()
            writer.entry(entry, leaf)
            frontier.append(leaf)
            if frontier.size in heads:
                signed.append(signer.sign(platform, frontier.size, frontier.root(),
                                          1764633600000000 + frontier.size))
        for head in signed:
            writer.head(head)
        writer.close()
    return signer


def measure(count: int) -> tuple[float, float, int]:
    """(seconds to verify, entries per second, file size in bytes) for ``count`` entries."""
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as folder:
        path = Path(folder) / "export.jsonl"
        signer = write_synthetic(path, count)
        started = time.perf_counter()
        report = verify(read_export(path), {signer.key_id: signer.public_key})
        elapsed = time.perf_counter() - started
        assert report.ok and report.verified_size == count, report.problems[:1]
        return elapsed, count / elapsed, path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    elapsed, rate, size = measure(args.entries)
    print(f"audit verify: {args.entries:,} entries ({size / 2**20:,.0f} MiB) in {elapsed:.1f}s, "
          f"{rate:,.0f} entries/s")


if __name__ == "__main__":
    main()
