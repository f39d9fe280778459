"""A team tree with a history, brought in through ImportResellers, for tests that need one
(team numbers over past months, a thousand members…).

    members = generated_tree(1000, first=datetime(2026, 1, 5, tzinfo=UTC),
                             last=datetime(2026, 10, 20, tzinfo=UTC), seed=7)
    reply = import_tree(shop, members)   # every member imported, or the test fails
    # reads that must see the tree: min_log_position=reply.receipt.log_position
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from ledger.clients.sdk import LedgerClient

from ledger.v1 import storefront_pb2

MAX_PER_MESSAGE = 1000  # what one ImportResellers message takes


@dataclass(frozen=True)
class Member:
    reseller_id: str
    sponsor_id: str  # '' at the top of the tree
    enrolled_at: datetime
    rank: str = ""


def generated_tree(size: int, *, first: datetime, last: datetime, seed: int = 0,
                   prefix: str = "m") -> list[Member]:
    """``size`` members (ids ``m00000``, ``m00001``…) enrolled one after another, evenly
    spread from ``first`` to ``last``: the first at the top of the tree, each later one
    under a member drawn at random among those before it, so every sponsor enrolled first.
    The same arguments give the same tree."""
    assert size >= 1 and first <= last and first.tzinfo is not None
    draw = random.Random(seed)
    step = (last - first) / max(size - 1, 1)
    members: list[Member] = []
    for n in range(size):
        sponsor = members[draw.randrange(n)].reseller_id if n else ""
        members.append(Member(f"{prefix}{n:05d}", sponsor, first + step * n))
    return members


def imported(member: Member) -> storefront_pb2.ImportedReseller:
    at = Timestamp()
    at.FromDatetime(member.enrolled_at)
    return storefront_pb2.ImportedReseller(reseller_id=member.reseller_id,
                                           sponsor_id=member.sponsor_id, rank=member.rank,
                                           enrolled_at=at)


def import_tree(client: LedgerClient, members: Sequence[Member], *,
                per_message: int = MAX_PER_MESSAGE) -> storefront_pb2.ImportResellersResponse:
    """Imports ``members`` (with a storefront key's client) in one ImportResellers stream,
    ``per_message`` to a message, and fails the test unless every one of them landed.
    Sponsors need not come first within a message; a sponsor in a later message does."""
    assert 1 <= per_message <= MAX_PER_MESSAGE
    messages = [storefront_pb2.ImportResellersRequest(
        members=[imported(m) for m in members[start:start + per_message]])
        for start in range(0, len(members), per_message)]
    reply = client.storefront.ImportResellers(iter(messages), timeout=600)
    assert (reply.members, reply.imported) == (len(members), len(members)), \
        list(reply.failures)[:5]
    return reply
