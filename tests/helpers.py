"""Small helpers for tests that talk to the real gRPC server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from ledger.clients.sdk import LedgerClient, idempotency_key
from ledger.clients.simulator import line

from ledger.application import commands as c
from ledger.domain.payee import INDIVIDUAL, SealedIdentity
from ledger.v1 import common_pb2, storefront_pb2, tax_pb2


@dataclass
class Refusal:
    code: grpc.StatusCode
    message: str
    reason: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    # The server's id for the call, which ends its message ("… [request <id>]"); kept apart
    # so that two refusals that differ only by it compare equal.
    request_id: str = field(default="", compare=False)


def refused(call: Callable[[], Any]) -> Refusal:
    """Runs a call that must fail; returns its status with the google.rpc details decoded."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    error = raised.value
    message, _, request_id = (error.details() or "").rpartition(" [request ")  # type: ignore[attr-defined]
    if not message:  # no request id: a status made by grpc itself
        message, request_id = request_id, "]"
    out = Refusal(error.code(), message, request_id=request_id[:-1])  # type: ignore[attr-defined]
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.fields = {v.field: v.description for v in bad.field_violations}
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            out.reason = info.reason
    assert out.code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), out
    return out


def enroll(client: LedgerClient, reseller_id: str, sponsor_id: str = "",
           customer_id: str = "", without_sponsor: bool = False) -> common_pb2.Reseller:
    return client.storefront.EnrollReseller(storefront_pb2.EnrollResellerRequest(
        idempotency_key=idempotency_key(), reseller_id=reseller_id, sponsor_id=sponsor_id,
        customer_id=customer_id, without_sponsor=without_sponsor)).reseller


def team(client: LedgerClient) -> None:
    """Alice (no sponsor) ← Bob ← Carol."""
    enroll(client, "alice")
    enroll(client, "bob", "alice")
    enroll(client, "carol", "bob")


def identify(finance: LedgerClient, reseller_id: str) -> tax_pb2.Payee:
    """Finance records a reseller as an individual with an identity, so payouts to them
    are allowed (with income tax withheld)."""
    return finance.tax.RecordPayee(tax_pb2.RecordPayeeRequest(
        idempotency_key=idempotency_key(), account=f"reseller:{reseller_id}",
        kind=tax_pb2.PAYEE_KIND_INDIVIDUAL, identity=tax_pb2.PayeeIdentity(
            name=f"{reseller_id.title()} Test", id_type="resident_id",
            id_number="110105199003070000"))).payee


def identified(key: str, reseller_id: str) -> c.RecordPayee:
    """The same as a command, for tests that run the application without gRPC (the
    identity is opaque there: sealing is the API's)."""
    return c.RecordPayee(key, f"reseller:{reseller_id}", INDIVIDUAL, "",
                         SealedIdentity("k1", f"sealed-{reseller_id}"))


def place(client: LedgerClient, order_id: str, *, reseller: str = "carol", customer: str = "c1",
          lines: list[common_pb2.OrderLine] | None = None, key: str = "") -> common_pb2.Order:
    return client.storefront.PlaceOrder(storefront_pb2.PlaceOrderRequest(
        idempotency_key=key or idempotency_key(), order_id=order_id, customer_id=customer,
        reseller_id=reseller, currency="CNY",
        lines=lines if lines is not None else [line("tea", 3, 3333, 2000)])).order


def pay(client: LedgerClient, order_id: str, amount: int = 9999) -> common_pb2.Order:
    return client.storefront.PayOrder(storefront_pb2.PayOrderRequest(
        idempotency_key=idempotency_key(), order_id=order_id, payment_id=f"pay-{order_id}",
        amount=amount)).order


def refund(client: LedgerClient, order_id: str, refund_id: str, *lines: tuple[int, int],
           key: str = "") -> storefront_pb2.RefundOrderResponse:
    return client.storefront.RefundOrder(storefront_pb2.RefundOrderRequest(
        idempotency_key=key or idempotency_key(), order_id=order_id, refund_id=refund_id,
        lines=[common_pb2.RefundLine(line_no=n, amount=a) for n, a in lines]))


def shares(order: common_pb2.Order) -> dict[str, int]:
    return {s.account: s.amount for s in order.shares}


def postings(items: Any) -> set[tuple[str, int]]:
    return {(p.account, p.amount) for p in items}
