"""One log line per call, with a request id the client sees too; an ErrorInfo on every error.

The log lines are read from a real ``ledger serve`` with LEDGER_LOG_FORMAT=json, as an
operator's log collector would read them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from grpc import StatusCode
from hypothesis import given
from hypothesis import strategies as st
from ledger.clients.sdk import LedgerClient
from ledger.clients.simulator import line

from ledger.api.calls import MAX_REQUEST_ID, request_id_from
from ledger.api.errors import status_for
from ledger.application.group_commit import Overloaded
from ledger.domain import errors
from ledger.v1 import admin_pb2, finance_pb2, storefront_pb2
from tests.conftest import Keys, Running
from tests.helpers import refused
from tests.processes import Started, serve, serving, wait_until


def call_lines(output: str) -> list[dict[str, Any]]:
    """The JSON request lines in a server's output (other lines and non-JSON ones ignored)."""
    lines = []
    for text in output.splitlines():
        if text.startswith("{"):
            record = json.loads(text)
            if record.get("event") == "call":
                lines.append(record)
    return lines


def enroll_request(key: str, reseller: str = "alice") -> storefront_pb2.EnrollResellerRequest:
    return storefront_pb2.EnrollResellerRequest(
        idempotency_key=key, reseller_id=reseller, without_sponsor=True
    )


def test_each_call_has_one_json_line_with_its_request_id_and_the_client_sees_the_id(
    tmp_path: Path,
) -> None:
    keys = Keys()
    started = Started()
    try:
        server, address = serve(
            tmp_path,
            f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
            keys,
            LEDGER_LOG_FORMAT="json",
            LEDGER_LOG_LEVEL="info",
            LEDGER_AUDIT_KEY_FILE=str(tmp_path / "audit.pem"),
        )
        started.add(server)
        wait_until(lambda: serving(address), "the server to serve", 90)
        with LedgerClient(address, keys.shop_a) as shop:
            first, first_call = shop.storefront.EnrollReseller.with_call(
                enroll_request("enroll-alice"), metadata=(("x-request-id", "write-1"),)
            )
            again, again_call = shop.storefront.EnrollReseller.with_call(
                enroll_request("enroll-alice"), metadata=(("x-request-id", "write-2"),)
            )
            missing = refused(
                lambda: shop.storefront.GetOrder(
                    storefront_pb2.GetOrderRequest(order_id="O404"),
                    metadata=(("x-request-id", "read-404"),),
                )
            )
            _, made_call = shop.storefront.PlaceOrder.with_call(
                storefront_pb2.PlaceOrderRequest(
                    idempotency_key="place-1",
                    order_id="O1",
                    customer_id="c1",
                    reseller_id="alice",
                    currency="CNY",
                    lines=[line("tea", 1, 1000, 600)],
                )
            )
        with LedgerClient(address, "not-a-key") as stranger:
            unknown = refused(
                lambda: stranger.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id="O1"))
            )
        server.stop()
        lines = call_lines(server.output)
    finally:
        started.kill_all()

    def only(request_id: str) -> dict[str, Any]:
        named = [x for x in lines if x["request_id"] == request_id]
        assert len(named) == 1, (request_id, lines)  # logged once, errors included
        return named[0]

    written = only("write-1")
    assert written["service"] == "StorefrontService"
    assert written["method"] == "EnrollReseller"
    assert (written["platform"], written["key"], written["code"]) == ("acme", "shop-a", "OK")
    assert written["log_position"] == first.receipt.log_position
    assert written["replayed"] is False
    assert isinstance(written["duration_ms"], float) and written["duration_ms"] >= 0
    replay = only("write-2")
    assert again.receipt.replayed and replay["replayed"] is True
    assert replay["log_position"] == again.receipt.log_position == first.receipt.log_position
    assert dict(first_call.trailing_metadata())["x-request-id"] == "write-1"
    assert dict(again_call.trailing_metadata())["x-request-id"] == "write-2"

    # An error: the id the client sent is in the status message it sees and on the line.
    assert (missing.code, missing.request_id) == (StatusCode.NOT_FOUND, "read-404")
    failed = only("read-404")
    assert (failed["code"], failed["reason"]) == ("NOT_FOUND", missing.reason)
    assert (failed["method"], failed["platform"], failed["key"]) == ("GetOrder", "acme", "shop-a")

    # No id sent: one is made, returned in the trailing metadata, and on the line.
    made = dict(made_call.trailing_metadata())["x-request-id"]
    assert made and only(made)["method"] == "PlaceOrder"

    # An unknown key: UNAUTHENTICATED with its reason, no platform, and the key nowhere.
    assert (unknown.code, unknown.reason) == (StatusCode.UNAUTHENTICATED, "API_KEY_UNKNOWN")
    stranger_id = unknown.request_id
    assert only(stranger_id)["code"] == "UNAUTHENTICATED" and "platform" not in only(stranger_id)
    output = server.output
    for secret in ("not-a-key", keys.shop_a):
        assert secret not in output


def test_authentication_and_wrong_service_errors_carry_error_info(running: Running) -> None:
    with LedgerClient(running.target, "not-a-key") as stranger:
        unknown = refused(
            lambda: stranger.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id="O1"))
        )
    with grpc.insecure_channel(running.target) as channel:
        from ledger.v1 import storefront_pb2_grpc

        anonymous = refused(
            lambda: storefront_pb2_grpc.StorefrontServiceStub(channel).GetOrder(
                storefront_pb2.GetOrderRequest(order_id="O1")
            )
        )
    with running.client(running.keys.shop_a) as shop:
        shop_as_admin = refused(
            lambda: shop.admin.SetRank(
                admin_pb2.SetRankRequest(idempotency_key="k", reseller_id="alice", rank="x")
            )
        )
        shop_as_finance = refused(
            lambda: shop.finance.GetPayout(finance_pb2.GetPayoutRequest(payout_id="PO1"))
        )
    assert (unknown.code, unknown.reason) == (StatusCode.UNAUTHENTICATED, "API_KEY_UNKNOWN")
    assert (anonymous.code, anonymous.reason) == (StatusCode.UNAUTHENTICATED, "API_KEY_MISSING")
    assert (shop_as_admin.code, shop_as_admin.reason) == (
        StatusCode.PERMISSION_DENIED,
        "WRONG_SERVICE_FOR_ROLE",
    )
    assert (
        shop_as_admin.message == "a storefront key cannot call this service (it needs an admin key)"
    )
    assert shop_as_finance.reason == "WRONG_SERVICE_FOR_ROLE"
    assert shop_as_finance.message.endswith("(it needs a finance or an auditor key)")
    for refusal in (unknown, anonymous, shop_as_admin, shop_as_finance):
        assert len(refusal.request_id) == 16, refusal  # each error names its call


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidInput([("f", "bad")]),
        errors.RuleViolation("r"),
        errors.NotFound("n"),
        errors.AlreadyExists("a"),
        errors.AccessDenied("d"),
        errors.Conflict("c"),
        Overloaded("o"),
        ZeroDivisionError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_status_carries_an_error_info_reason(error: BaseException) -> None:
    status = status_for(error, log_it=False)
    reasons = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reasons.append(info.reason)
    assert len(reasons) == 1 and reasons[0], status
    assert status.code != code_pb2.OK


@given(st.text(max_size=200))
def test_a_request_id_is_the_clients_when_printable_and_short_else_made(value: str) -> None:
    chosen = request_id_from([("x-request-id", value)])
    usable = (
        0 < len(value) <= MAX_REQUEST_ID
        and value.isascii()
        and value.isprintable()
        and " " not in value
    )
    if usable:
        assert chosen == value
    else:
        assert chosen != value and len(chosen) == 16 and chosen.isalnum()


def test_while_quiet_a_server_writes_no_info_line_per_call(running: Running) -> None:
    """The demo's server is quiet while the demo plays: its calls would bury its story.
    (Warnings and errors, the server's own trouble, are still logged.)"""
    from structlog.testing import capture_logs

    running.server.quiet = True
    with capture_logs() as logs, running.client(running.keys.shop_a) as shop:
        shop.storefront.EnrollReseller(enroll_request("quiet", "bob"))
        with LedgerClient(running.target, "not-a-key") as stranger:
            refused(
                lambda: stranger.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id="O1"))
            )
        running.server.quiet = False
        shop.storefront.EnrollReseller(enroll_request("loud", "carol"))
    lines = [x for x in logs if x["event"] == "call"]
    assert [(x["method"], x["code"]) for x in lines] == [("EnrollReseller", "OK")]
