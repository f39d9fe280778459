"""A storefront simulator: drives the ledger the way a shop app would, over gRPC.

``worked_example`` replays DOMAIN.md's example (Alice ← Bob ← Carol, order O1 refunded in two
parts); ``random_traffic`` enrolls a growing team tree and places, pays, completes and refunds
orders with a seeded random generator, so a run can be repeated exactly.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from ledger.clients.sdk import LedgerClient, idempotency_key

from ledger.v1 import common_pb2, storefront_pb2


def line(sku: str, quantity: int, sale: int, supply: int, supplier: str = "S1",
         category: str = "general") -> common_pb2.OrderLine:
    return common_pb2.OrderLine(sku=sku, category=category, quantity=quantity,
                                unit_sale_price=sale, unit_supply_price=supply,
                                supplier_id=supplier)


def enroll(client: LedgerClient, reseller_id: str, sponsor_id: str = "",
           customer_id: str = "") -> storefront_pb2.EnrollResellerResponse:
    return client.storefront.EnrollReseller(storefront_pb2.EnrollResellerRequest(
        idempotency_key=idempotency_key(), reseller_id=reseller_id, sponsor_id=sponsor_id,
        customer_id=customer_id, without_sponsor=not sponsor_id and not customer_id))


def worked_example(client: LedgerClient, prefix: str = "") -> list[common_pb2.Order]:
    """DOMAIN.md's example: returns the order after payment, after each refund."""
    alice, bob, carol = (f"{prefix}{n}" for n in ("alice", "bob", "carol"))
    order_id = f"{prefix}O1"
    enroll(client, alice)
    enroll(client, bob, alice)
    enroll(client, carol, bob)
    sf = client.storefront
    sf.PlaceOrder(storefront_pb2.PlaceOrderRequest(
        idempotency_key=idempotency_key(), order_id=order_id, customer_id=f"{prefix}c1",
        reseller_id=carol, currency="CNY", lines=[line("tea", 3, 3333, 2000)]))
    paid = sf.PayOrder(storefront_pb2.PayOrderRequest(
        idempotency_key=idempotency_key(), order_id=order_id, payment_id=f"{prefix}pay-1",
        amount=9999)).order
    first = sf.RefundOrder(storefront_pb2.RefundOrderRequest(
        idempotency_key=idempotency_key(), order_id=order_id, refund_id="r1",
        lines=[common_pb2.RefundLine(line_no=1, amount=3333)], reason="one unit back"))
    second = sf.RefundOrder(storefront_pb2.RefundOrderRequest(
        idempotency_key=idempotency_key(), order_id=order_id, refund_id="r2",
        lines=[common_pb2.RefundLine(line_no=1, amount=6666)], reason="the rest back"))
    return [paid, first.order, second.order]


@dataclass
class TrafficStats:
    resellers: int = 0
    orders: int = 0
    paid: int = 0
    completed: int = 0
    refunds: int = 0
    gmv: int = 0
    refunded: int = 0
    postings: list[common_pb2.Posting] = field(default_factory=list)


def random_traffic(client: LedgerClient, *, orders: int, seed: int = 7,
                   prefix: str = "") -> TrafficStats:
    """A realistic S2B2C mix: a growing tree, 1–5 line orders, ~1 in 10 refunded."""
    rng = random.Random(seed)
    stats = TrafficStats()
    resellers: list[str] = []
    sf = client.storefront

    def new_reseller() -> str:
        rid = f"{prefix}r{len(resellers) + 1}"
        enroll(client, rid, rng.choice(resellers) if resellers and rng.random() < 0.9 else "")
        resellers.append(rid)
        stats.resellers += 1
        return rid

    for _ in range(3):
        new_reseller()
    for n in range(1, orders + 1):
        if rng.random() < 0.2:
            new_reseller()
        order_id = f"{prefix}o{n}"
        lines = [line(f"sku{rng.randint(1, 40)}", rng.randint(1, 4), sale, rng.randint(0, sale))
                 for sale in (rng.randint(100, 50_000) for _ in range(rng.randint(1, 5)))]
        seller = rng.choice(resellers) if rng.random() < 0.9 else ""
        placed = sf.PlaceOrder(storefront_pb2.PlaceOrderRequest(
            idempotency_key=idempotency_key(), order_id=order_id,
            customer_id=f"{prefix}c{rng.randint(1, orders)}", reseller_id=seller, currency="CNY",
            lines=lines)).order
        stats.orders += 1
        if rng.random() < 0.05:
            sf.CancelOrder(storefront_pb2.CancelOrderRequest(
                idempotency_key=idempotency_key(), order_id=order_id, reason="changed mind"))
            continue
        paid = sf.PayOrder(storefront_pb2.PayOrderRequest(
            idempotency_key=idempotency_key(), order_id=order_id, payment_id=f"pay-{order_id}",
            amount=placed.total)).order
        stats.paid += 1
        stats.gmv += paid.total
        stats.postings.extend(paid.payment_postings)
        if rng.random() < 0.8:
            sf.CompleteOrder(storefront_pb2.CompleteOrderRequest(
                idempotency_key=idempotency_key(), order_id=order_id))
            stats.completed += 1
        if rng.random() < 0.1:
            for refund in _refunds(rng, paid):
                done = sf.RefundOrder(storefront_pb2.RefundOrderRequest(
                    idempotency_key=idempotency_key(), order_id=order_id,
                    refund_id=refund.refund_id, lines=refund.lines, reason="return"))
                stats.refunds += 1
                stats.refunded += done.refund.amount
                stats.postings.extend(done.refund.postings)
    return stats


def _refunds(rng: random.Random, order: common_pb2.Order) -> Iterator[common_pb2.Refund]:
    """One or two refunds of one line: sometimes partial, sometimes the whole line."""
    target = rng.choice(list(order.lines))
    first = rng.randint(1, target.amount) if rng.random() < 0.5 else target.amount
    yield common_pb2.Refund(refund_id="rf1", lines=[
        common_pb2.RefundLine(line_no=target.line_no, amount=first)])
    if first < target.amount and rng.random() < 0.5:
        yield common_pb2.Refund(refund_id="rf2", lines=[
            common_pb2.RefundLine(line_no=target.line_no, amount=target.amount - first)])
