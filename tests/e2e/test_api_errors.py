"""Every refusal maps to a precise status; no request, however odd, gets UNKNOWN or INTERNAL."""

from __future__ import annotations

import grpc
import pytest
from eventsourcing.persistence import OperationalError
from google.rpc import code_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger.clients.sdk import LedgerClient

from ledger.api.errors import status_for
from ledger.application.group_commit import Overloaded
from ledger.domain import errors
from ledger.v1 import common_pb2, storefront_pb2


@pytest.mark.parametrize("error, code", [
    (errors.InvalidInput([("f", "bad")]), code_pb2.INVALID_ARGUMENT),
    (errors.RuleViolation("r"), code_pb2.FAILED_PRECONDITION),
    (errors.NotFound("n"), code_pb2.NOT_FOUND),
    (errors.AlreadyExists("a"), code_pb2.ALREADY_EXISTS),
    (errors.AccessDenied("d"), code_pb2.PERMISSION_DENIED),
    (errors.Conflict("c"), code_pb2.ABORTED),
    (Overloaded("o"), code_pb2.RESOURCE_EXHAUSTED),
    (OperationalError("db down"), code_pb2.UNAVAILABLE),
    (ZeroDivisionError(), code_pb2.INTERNAL),
])
def test_each_refusal_has_its_status(error: BaseException, code: int) -> None:
    status = status_for(error)
    assert status.code == code
    assert "Traceback" not in status.message


texts = st.text(max_size=140)
amounts = st.integers(-(2**63), 2**63 - 1)
lines = st.builds(
    common_pb2.OrderLine, sku=texts, category=texts, supplier_id=texts,
    quantity=amounts, unit_sale_price=amounts, unit_supply_price=amounts,
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=texts, order_id=texts, customer=texts, reseller=texts, currency=texts,
       lines=st.lists(lines, max_size=3), pay=amounts, refund_amount=amounts)
def test_odd_requests_get_clear_statuses(
    shop: LedgerClient, key: str, order_id: str, customer: str, reseller: str, currency: str,
    lines: list[common_pb2.OrderLine], pay: int, refund_amount: int,
) -> None:
    calls = [
        lambda: shop.storefront.PlaceOrder(storefront_pb2.PlaceOrderRequest(
            idempotency_key=key, order_id=order_id, customer_id=customer, reseller_id=reseller,
            currency=currency, lines=lines)),
        lambda: shop.storefront.PayOrder(storefront_pb2.PayOrderRequest(
            idempotency_key=key + "p", order_id=order_id, payment_id=key, amount=pay)),
        lambda: shop.storefront.RefundOrder(storefront_pb2.RefundOrderRequest(
            idempotency_key=key + "r", order_id=order_id, refund_id=key,
            lines=[common_pb2.RefundLine(line_no=1, amount=refund_amount)])),
        lambda: shop.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id=order_id)),
    ]
    for call in calls:
        try:
            call()
        except grpc.RpcError as error:
            assert error.code() not in (grpc.StatusCode.UNKNOWN,  # type: ignore[attr-defined]
                                        grpc.StatusCode.INTERNAL), error
