"""What auditing costs and how fast it reads, measured in the benchmark's own run:

- StreamEvents: a platform's whole log streamed to an auditor, entries per second;
- the start-up check (every leaf recomputed from the log, every head's root and signature):
  entries per second, as a server starting over that log does it;
- the audit tree's hashing on the write path: the Python a writer spends per entry (its
  encoding, its leaf hash, the subtrees it closes), timed in this process on events of the
  sizes the ledger stores, as a share of the server's whole CPU per command in the same run.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import grpc

from bench.audit_verify import KINDS
from ledger.audit.entries import Entry
from ledger.audit.merkle import Frontier
from ledger.v1 import audit_pb2, audit_pb2_grpc

AUDITOR_KEY = "bench-auditor-key"


def stream_rate(address: str) -> tuple[int, float]:
    """(entries, entries/s) of streaming the bench platform's whole log."""
    with grpc.insecure_channel(address) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        metadata = (("authorization", f"Bearer {AUDITOR_KEY}"),)
        started = time.perf_counter()
        entries = sum(len(page.entries) for page in stub.StreamEvents(
            audit_pb2.StreamEventsRequest(page_size=5_000), metadata=metadata, timeout=600))
        return entries, entries / (time.perf_counter() - started)


def check_rate(url: str, key_file: Path) -> tuple[int, float]:
    """(entries, entries/s) of the check a server runs at start over the store at ``url``."""
    from ledger.adapters.audit_store import AuditLog
    from ledger.application.audit_check import check_history
    from ledger.application.audit_trail import AuditTrail, load_or_create_signer
    from ledger.bootstrap import build_application

    app = build_application(url)
    try:
        trail = AuditTrail(AuditLog(app), load_or_create_signer(key_file))
        started = time.perf_counter()
        checked = check_history(trail.log, trail.keys())
        return checked.entries, checked.entries / (time.perf_counter() - started)
    finally:
        app.close()


def hashing_us_per_entry(count: int = 50_000) -> float:
    """The writer's audit work per entry, in µs: encoding, leaf hash, frontier append."""
    streams = [uuid.uuid4() for _ in range(100)]
    events = [(topic, b"x" * size) for topic, size in KINDS]
    frontier = Frontier()
    started = time.perf_counter()
    for seq in range(count):
        topic, state = events[seq % len(events)]
        frontier.append(Entry("bench", seq, seq + 1, 1764633600000000, streams[seq % 100],
                              seq // 100 + 1, topic, state).leaf_hash())
    return (time.perf_counter() - started) / count * 1e6
