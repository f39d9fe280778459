"""Baseline A: a gRPC server with the ledger's messages that does nothing at all.

    python -m bench.null_server --port 50999
"""

from __future__ import annotations

import argparse
import asyncio

import grpc

from ledger.v1 import storefront_pb2, storefront_pb2_grpc


class NullStorefront(storefront_pb2_grpc.StorefrontServiceServicer):
    async def EnrollReseller(self, request, context):  # type: ignore[no-untyped-def]
        return storefront_pb2.EnrollResellerResponse()

    async def PlaceOrder(self, request, context):  # type: ignore[no-untyped-def]
        return storefront_pb2.PlaceOrderResponse()

    async def PayOrder(self, request, context):  # type: ignore[no-untyped-def]
        return storefront_pb2.PayOrderResponse()

    async def CompleteOrder(self, request, context):  # type: ignore[no-untyped-def]
        return storefront_pb2.CompleteOrderResponse()

    async def RefundOrder(self, request, context):  # type: ignore[no-untyped-def]
        return storefront_pb2.RefundOrderResponse()


async def serve(port: int) -> None:
    server = grpc.aio.server()
    storefront_pb2_grpc.add_StorefrontServiceServicer_to_server(NullStorefront(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))
