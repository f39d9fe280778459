"""The S2B2C mix the benchmarks drive: a growing reseller tree, orders of 1–5 lines that are
placed, paid and mostly completed, about 1 in 10 refunded (some partially).

A workload is a list of *flows*; each flow is a short sequence of steps that must run in order
(an order is placed before it is paid), and different flows run concurrently. The same flows
feed the gRPC load generator (ledger and do-nothing baseline) and the plain-eventsourcing
baseline, so all three do the same work.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Flows between a reseller's enrollment and the first enrollment they may sponsor.
SPONSOR_DELAY = 500


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int
    sale: int
    supply: int


@dataclass(frozen=True)
class Step:
    kind: str  # enroll, place, pay, complete, refund
    key: str
    order_id: str = ""
    reseller_id: str = ""
    sponsor_id: str = ""
    customer_id: str = ""
    lines: tuple[Line, ...] = ()
    amount: int = 0


Flow = list[Step]


def build(orders: int, *, seed: int = 42, prefix: str = "") -> tuple[list[Flow], list[Flow]]:
    """(set-up flows that enroll the first resellers, the measured flows)."""
    rng = random.Random(seed)
    resellers = [f"{prefix}r{n}" for n in range(1, 21)]
    setup: list[Flow] = [[Step("enroll", f"{prefix}e{n}", reseller_id=rid,
                               sponsor_id=resellers[(n - 2) // 3] if n > 1 else "")]
                         for n, rid in enumerate(resellers, start=1)]
    flows: list[Flow] = []
    # A storefront enrolls a reseller's recruits only after hearing back from the reseller's
    # own enrollment. Here a reseller may sponsor once SPONSOR_DELAY flows (many more than are
    # ever in flight) have been queued after the flow that enrolled them.
    enrolled_at = dict.fromkeys(resellers, -SPONSOR_DELAY)
    for n in range(orders):
        if rng.random() < 0.05:  # the tree keeps growing
            rid = f"{prefix}r{len(resellers) + 1}"
            sponsors = [r for r in resellers if enrolled_at[r] <= len(flows) - SPONSOR_DELAY]
            flows.append([Step("enroll", f"{prefix}e-{rid}", reseller_id=rid,
                               sponsor_id=rng.choice(sponsors))])
            enrolled_at[rid] = len(flows)
            resellers.append(rid)
        oid = f"{prefix}o{n}"
        lines = tuple(Line(f"sku{rng.randint(1, 500)}", rng.randint(1, 3), sale,
                           rng.randint(sale // 3, sale))
                      for sale in (rng.randint(500, 30_000) for _ in range(rng.randint(1, 5))))
        total = sum(x.quantity * x.sale for x in lines)
        seller = rng.choice(resellers[:20]) if rng.random() < 0.9 else ""
        flow = [Step("place", f"{oid}p", order_id=oid, reseller_id=seller,
                     customer_id=f"{prefix}c{rng.randint(1, orders)}", lines=lines),
                Step("pay", f"{oid}y", order_id=oid, amount=total)]
        if rng.random() < 0.8:
            flow.append(Step("complete", f"{oid}c", order_id=oid))
        if rng.random() < 0.1:
            first = lines[0].quantity * lines[0].sale
            partial = rng.random() < 0.5
            flow.append(Step("refund", f"{oid}r", order_id=oid,
                             amount=first // 2 if partial else first))
        flows.append(flow)
    return setup, flows
