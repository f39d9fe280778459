"""A small client for the ledger's gRPC API: a channel that carries the API key, and stubs.

    client = LedgerClient("127.0.0.1:50051", api_key)
    client.storefront.PlaceOrder(storefront_pb2.PlaceOrderRequest(...))
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc

from ledger.v1 import (
    admin_pb2_grpc,
    audit_pb2_grpc,
    finance_pb2_grpc,
    report_pb2_grpc,
    storefront_pb2_grpc,
)


class _BearerAuth(grpc.UnaryUnaryClientInterceptor, grpc.StreamUnaryClientInterceptor,
                  grpc.UnaryStreamClientInterceptor):
    """Adds the API key to every call: unary, client-streaming (ImportOrders) and
    server-streaming (StreamEvents)."""

    def __init__(self, api_key: str) -> None:
        self._metadata = (("authorization", f"Bearer {api_key}"),)

    def _details(self, client_call_details: Any) -> Any:
        return client_call_details._replace(
            metadata=tuple(client_call_details.metadata or ()) + self._metadata
        )

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request_iterator)


def idempotency_key() -> str:
    """A fresh key for a new write; reuse it, and only it, when retrying that write."""
    return uuid.uuid4().hex


class LedgerClient:
    def __init__(self, target: str, api_key: str) -> None:
        self._channel = grpc.intercept_channel(
            grpc.insecure_channel(target), _BearerAuth(api_key)
        )
        self.storefront = storefront_pb2_grpc.StorefrontServiceStub(self._channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self._channel)
        self.report = report_pb2_grpc.ReportServiceStub(self._channel)
        self.finance = finance_pb2_grpc.FinanceServiceStub(self._channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
