"""A grpc.aio load generator: runs flows with a fixed number of requests in flight and
records every call's latency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from bench.workload import Flow, Step
from ledger.v1 import common_pb2, storefront_pb2, storefront_pb2_grpc

# A storefront recording its sales needs to know each write took, not the order's whole
# split back (it can GetOrder that): the basic answer, as a storefront would ask.
BASIC = common_pb2.ORDER_VIEW_BASIC


def request_for(step: Step) -> tuple[str, Any]:
    """The StorefrontService method and request a storefront sends for a step."""
    if step.kind == "enroll":
        return "EnrollReseller", storefront_pb2.EnrollResellerRequest(
            idempotency_key=step.key, reseller_id=step.reseller_id, sponsor_id=step.sponsor_id,
            without_sponsor=not step.sponsor_id)
    if step.kind == "place":
        return "PlaceOrder", storefront_pb2.PlaceOrderRequest(
            idempotency_key=step.key, order_id=step.order_id, customer_id=step.customer_id,
            reseller_id=step.reseller_id, currency="CNY", lines=[
                common_pb2.OrderLine(sku=x.sku, category="general", quantity=x.quantity,
                                     unit_sale_price=x.sale, unit_supply_price=x.supply,
                                     supplier_id="S1") for x in step.lines], view=BASIC)
    if step.kind == "pay":
        return "PayOrder", storefront_pb2.PayOrderRequest(
            idempotency_key=step.key, order_id=step.order_id, payment_id=f"w-{step.order_id}",
            amount=step.amount, view=BASIC)
    if step.kind == "complete":
        return "CompleteOrder", storefront_pb2.CompleteOrderRequest(
            idempotency_key=step.key, order_id=step.order_id, view=BASIC)
    assert step.kind == "refund", step.kind
    return "RefundOrder", storefront_pb2.RefundOrderRequest(
        idempotency_key=step.key, order_id=step.order_id, refund_id="r1",
        lines=[common_pb2.RefundLine(line_no=1, amount=step.amount)], view=BASIC)


@dataclass
class Result:
    in_flight: int
    calls: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_error: str = ""
    last_position: int = 0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0


async def run_flows(target: str, key: str, flows: Sequence[Flow], in_flight: int,
                    timeout: float = 30.0, connections: int = 1) -> Result:
    """Runs every flow, ``in_flight`` of them at a time, each flow's steps in order, over
    ``connections`` separate connections (so that several server processes sharing one port
    all get some)."""
    result = Result(in_flight)
    metadata = (("authorization", f"Bearer {key}"),)
    queue: asyncio.Queue[Flow] = asyncio.Queue()
    for flow in flows:
        queue.put_nowait(flow)
    channels = [grpc.aio.insecure_channel(target, options=[
        ("grpc.use_local_subchannel_pool", 1)]) for _ in range(connections)]
    stubs = [storefront_pb2_grpc.StorefrontServiceStub(ch) for ch in channels]
    try:

        async def worker(stub: Any) -> None:
            while True:
                try:
                    flow = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                for step in flow:
                    method, request = request_for(step)
                    started = time.perf_counter()
                    try:
                        reply = await getattr(stub, method)(request, metadata=metadata,
                                                            timeout=timeout)
                        receipt = getattr(reply, "receipt", None)
                        if receipt is not None:
                            result.last_position = max(result.last_position,
                                                       receipt.log_position)
                    except grpc.aio.AioRpcError as error:
                        result.errors += 1
                        result.first_error = result.first_error or (
                            f"{method}: {error.code().name} {error.details()}")
                    result.latencies.append(time.perf_counter() - started)
                    result.calls += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(stubs[n % connections]) for n in range(in_flight)))
        result.seconds = time.perf_counter() - started
    finally:
        for channel in channels:
            await channel.close()
    return result


async def import_orders(target: str, key: str, flows: Sequence[Flow], per_message: int,
                        streams: int = 1) -> tuple[int, int, float, int]:
    """The bulk path: every order of the flows through ImportOrders, over ``streams``
    concurrent streams on separate connections (so that several server processes sharing
    one port all get some). Returns (orders, imported, seconds, last log position)."""
    orders = [f for f in flows if f[0].kind == "place"]
    metadata = (("authorization", f"Bearer {key}"),)

    def batches(mine: Sequence[Flow]) -> Any:
        for start in range(0, len(mine), per_message):
            yield storefront_pb2.ImportOrdersRequest(orders=[
                storefront_pb2.ImportedOrder(
                    order_id=f[0].order_id, customer_id=f[0].customer_id,
                    reseller_id=f[0].reseller_id, currency="CNY",
                    lines=request_for(f[0])[1].lines, payment_id=f"w-{f[0].order_id}",
                    completed=any(s.kind == "complete" for s in f))
                for f in mine[start:start + per_message]])

    async def stream(mine: Sequence[Flow]) -> Any:
        async with grpc.aio.insecure_channel(
                target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            stub = storefront_pb2_grpc.StorefrontServiceStub(channel)
            return await stub.ImportOrders(batches(mine), metadata=metadata, timeout=3600)

    started = time.perf_counter()
    replies = await asyncio.gather(*(stream(orders[n::streams]) for n in range(streams)))
    seconds = time.perf_counter() - started
    return (sum(r.orders for r in replies), sum(r.imported for r in replies), seconds,
            max(r.receipt.log_position for r in replies))
