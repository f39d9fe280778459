"""Whatever bytes a caller sends, the answer is a clear status: never INTERNAL or UNKNOWN.

A storefront is written by another team, sometimes buggy, sometimes hostile. Every RPC of
every service is read from the proto descriptors (a new one is covered without a line here)
and sent generated requests: messages with any values their fields can carry (timestamps
outside 0001..9999, nanos outside a second, enum numbers the proto does not define), the
same with a string made invalid UTF-8, cut short or with a byte changed, and plain garbage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger.clients.sdk import LedgerClient
from ledger.clients.simulator import line

from ledger.api.auth import ADMIN, FINANCE, STOREFRONT
from ledger.api.requests import MAX_SECONDS, MIN_SECONDS
from ledger.api.server import SERVICES, LedgerServer, ServerThread
from ledger.application.commands import IN_CALENDAR
from ledger.config import Settings
from ledger.v1 import admin_pb2, common_pb2, finance_pb2, report_pb2, storefront_pb2
from tests.conftest import Clock, Keys, Running
from tests.helpers import Refusal, pay, place, refused, team

ROLE_OF = {"StorefrontService": STOREFRONT, "AdminService": ADMIN, "FinanceService": FINANCE,
           "ReportService": ADMIN, "AuditService": FINANCE, "TaxService": FINANCE}
# A server stream that follows the log (StreamEvents with follow) ends only at its deadline.
STREAM_TIMEOUT = 2.0
METHODS = [method for service in SERVICES for method in service.methods]
CLEAR = (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)
CALL_TIMEOUT = 20.0


@dataclass
class Target:
    """A served ledger with the worked example's team and a paid order, and a way to send
    raw bytes to any method with the key its service needs."""

    channel: grpc.Channel
    keys: Keys
    server: LedgerServer
    address: str

    def key_for(self, method: MethodDescriptor) -> str:
        role = ROLE_OF[method.containing_service.name]
        return {STOREFRONT: self.keys.shop_a, ADMIN: self.keys.admin,
                FINANCE: self.keys.finance}[role]

    def send(self, method: MethodDescriptor, bodies: list[bytes]) -> grpc.StatusCode:
        """Sends ``bodies`` (one, or a stream of them) as they are; returns the status."""
        path = f"/{method.containing_service.full_name}/{method.name}"
        metadata = (("authorization", f"Bearer {self.key_for(method)}"),)
        try:
            if method.client_streaming:
                self.channel.stream_unary(path, request_serializer=None,
                                          response_deserializer=None)(
                    iter(bodies), metadata=metadata, timeout=CALL_TIMEOUT)
            elif method.server_streaming:
                try:
                    for _ in self.channel.unary_stream(path, request_serializer=None,
                                                       response_deserializer=None)(
                            bodies[0], metadata=metadata, timeout=STREAM_TIMEOUT):
                        pass
                except grpc.RpcError as error:
                    if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:  # type: ignore[attr-defined]
                        raise
            else:
                self.channel.unary_unary(path, request_serializer=None,
                                         response_deserializer=None)(
                    bodies[0], metadata=metadata, timeout=CALL_TIMEOUT)
        except grpc.RpcError as error:
            return error.code()  # type: ignore[attr-defined, no-any-return]
        return grpc.StatusCode.OK


@pytest.fixture
def target(store_url: str) -> Iterator[Target]:
    keys = Keys()
    # No scheduled settlement: nothing but the requests sent may move the log head.
    url = store_url if store_url.startswith("sqlite") else f"{store_url}&pool_size=2"
    settings_ = Settings(database_url=url, listen="127.0.0.1:0", settlement_interval=0)
    server = LedgerServer(settings_, keys.ring(), clock=Clock())
    with ServerThread(server) as running, grpc.insecure_channel(running.target) as channel:
        with LedgerClient(running.target, keys.shop_a) as shop:
            team(shop)
            place(shop, "O1")
            pay(shop, "O1")
        yield Target(channel, keys, server, running.target)


# --- requests generated from the descriptors -------------------------------------------------

KNOWN = ["alice", "bob", "carol", "O1", "c1", "reseller:carol", "platform", "CNY", "2026-11",
         "2026-11-01", "tea", "S1", "reseller:\0", "O\0", "\0", "9999-12", "0001-01",
         "9999-12-31", "0001-01-01"]
texts = st.one_of(st.sampled_from(KNOWN), st.text(max_size=16))
SIGNED = {FieldDescriptor.TYPE_INT32: 31, FieldDescriptor.TYPE_SINT32: 31,
          FieldDescriptor.TYPE_SFIXED32: 31, FieldDescriptor.TYPE_INT64: 63,
          FieldDescriptor.TYPE_SINT64: 63, FieldDescriptor.TYPE_SFIXED64: 63}
UNSIGNED = {FieldDescriptor.TYPE_UINT32: 32, FieldDescriptor.TYPE_FIXED32: 32,
            FieldDescriptor.TYPE_UINT64: 64, FieldDescriptor.TYPE_FIXED64: 64}


def integers(bits: int, signed: bool) -> st.SearchStrategy[int]:
    low, high = (-(2 ** bits), 2 ** bits - 1) if signed else (0, 2 ** bits - 1)
    return st.one_of(st.integers(-3, 10_000).filter(lambda n: low <= n <= high),
                     st.integers(low, high), st.sampled_from([low, high]))


timestamps = st.builds(
    Timestamp,
    seconds=st.one_of(st.integers(1_700_000_000, 1_800_000_000),
                      st.integers(MIN_SECONDS - 2, MIN_SECONDS + 2),
                      st.integers(MAX_SECONDS - 2, MAX_SECONDS + 2),
                      integers(63, signed=True)),
    nanos=st.one_of(st.integers(0, 999_999_999), st.sampled_from([-1, 10**9]),
                    integers(31, signed=True)),
)


def values(field: FieldDescriptor, depth: int) -> st.SearchStrategy[object]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return texts
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=16)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_ENUM:
        return st.one_of(st.sampled_from(list(field.enum_type.values_by_number)),
                         integers(31, signed=True))
    if kind in SIGNED:
        return integers(SIGNED[kind], signed=True)
    if kind in UNSIGNED:
        return integers(UNSIGNED[kind], signed=False)
    if kind == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name == Timestamp.DESCRIPTOR.full_name:
            return timestamps
        return messages(field.message_type, depth + 1)
    return st.floats()


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of ``descriptor``'s type with any subset of fields set to any value."""
    cls = message_factory.GetMessageClass(descriptor)
    if depth > 3:
        return st.just(cls())
    fields = {}
    for field in descriptor.fields:
        value = values(field, depth)
        fields[field.name] = st.lists(value, max_size=3) if field.is_repeated else value
    return st.fixed_dictionaries({}, optional=fields).map(lambda kw: cls(**kw))


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def with_bad_utf8(descriptor: Descriptor) -> st.SearchStrategy[Callable[[bytes], bytes]]:
    """Appends another occurrence of one of the message's string fields, not UTF-8."""
    strings = [f for f in descriptor.fields if f.type == FieldDescriptor.TYPE_STRING]
    if not strings:
        return st.just(lambda body: body)
    junk = st.binary(min_size=1, max_size=8).map(lambda b: b"\xff" + b)

    def append(field: FieldDescriptor, bad: bytes) -> Callable[[bytes], bytes]:
        return lambda body: body + varint(field.number << 3 | 2) + varint(len(bad)) + bad

    return st.builds(append, st.sampled_from(strings), junk)


def bodies(method: MethodDescriptor) -> st.SearchStrategy[bytes]:
    """One request body for ``method``: valid, odd, broken or garbage."""
    made = messages(method.input_type).map(lambda m: m.SerializeToString())

    def cut(body: bytes, at: int) -> bytes:
        return body[:at % max(len(body), 1)]

    def flip(body: bytes, at: int, byte: int) -> bytes:
        if not body:
            return bytes([byte])
        at %= len(body)
        return body[:at] + bytes([byte]) + body[at + 1:]

    return st.one_of(
        made,
        st.builds(lambda body, change: change(body), made, with_bad_utf8(method.input_type)),
        st.builds(cut, made, st.integers(0, 10_000)),
        st.builds(flip, made, st.integers(0, 10_000), st.integers(0, 255)),
        st.binary(max_size=64),
    )


@pytest.mark.timeout(600)
def test_no_request_whatever_its_bytes_gets_internal_or_unknown(target: Target) -> None:
    """At least 1,000 requests over every RPC: each answered with a clear status, none
    that is refused moves the log head, and the server still serves afterwards."""
    sent: list[tuple[str, grpc.StatusCode]] = []

    @settings(max_examples=30, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def every_method_once(data: st.DataObject) -> None:
        for method in METHODS:
            strategy = bodies(method)
            requests = (data.draw(st.lists(strategy, min_size=1, max_size=2))
                        if method.client_streaming else [data.draw(strategy)])
            head = target.server.app.log_position()
            code = target.send(method, requests)
            sent.append((method.full_name, code))
            assert code not in CLEAR, (method.full_name, requests, code)
            # (A stream refused at its second message keeps what its first imported, as
            # documented: each message's orders are written as it arrives.)
            if code != grpc.StatusCode.OK and len(requests) == 1:
                assert target.server.app.log_position() == head, (method.full_name, requests)

    every_method_once()
    assert len(sent) >= 1000
    assert {name for name, _ in sent} == {m.full_name for m in METHODS}
    assert grpc.StatusCode.INVALID_ARGUMENT in {code for _, code in sent}
    with LedgerClient(target.address, target.keys.shop_a) as shop:
        # (The generated requests may have completed or refunded O1: they are real calls.)
        got = shop.storefront.GetOrder(storefront_pb2.GetOrderRequest(order_id="O1"))
        assert got.order.order_id == "O1" and got.order.total == 9999


# --- each kind of bad request, named to the field --------------------------------------------


def field_paths(descriptor: Descriptor, wanted: Callable[[FieldDescriptor], bool],
                prefix: str = "") -> Iterator[str]:
    """Paths (``orders[0].paid_at``) to every field of a request that ``wanted`` picks."""
    for field in descriptor.fields:
        path = prefix + field.name + ("[0]" if field.is_repeated else "")
        if wanted(field):
            yield path
        elif (field.type == FieldDescriptor.TYPE_MESSAGE
              and field.message_type.full_name != Timestamp.DESCRIPTOR.full_name):
            yield from field_paths(field.message_type, wanted, path + ".")


def with_value(method: MethodDescriptor, path: str, value: object) -> bytes:
    """A request for ``method`` with only the field at ``path`` set (to ``value``)."""
    request = message_factory.GetMessageClass(method.input_type)()
    *parents, last = path.split(".")
    node: Message = request
    for part in parents:
        name, repeated = part.removesuffix("[0]"), part.endswith("[0]")
        node = getattr(node, name).add() if repeated else getattr(node, name)
    if last.endswith("[0]"):
        getattr(node, last.removesuffix("[0]")).append(value)
    elif isinstance(value, Timestamp):
        getattr(node, last).CopyFrom(value)
    else:
        setattr(node, last, value)
    return request.SerializeToString()


def is_timestamp(field: FieldDescriptor) -> bool:
    return (field.type == FieldDescriptor.TYPE_MESSAGE
            and field.message_type.full_name == Timestamp.DESCRIPTOR.full_name)


def is_enum(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_ENUM


def is_string(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_STRING


def every(wanted: Callable[[FieldDescriptor], bool]) -> list[tuple[MethodDescriptor, str]]:
    return [(method, path) for method in METHODS
            for path in field_paths(method.input_type, wanted)]


TIMESTAMP_FIELDS = every(is_timestamp)
ENUM_FIELDS = every(is_enum)


def send(running: Running, method: MethodDescriptor, body: bytes) -> Refusal:
    """Sends ``body`` as it is, with the key the method's service needs; it must be refused."""
    target = Target(grpc.insecure_channel(running.target), running.keys, running.server,
                    running.target)
    path = f"/{method.containing_service.full_name}/{method.name}"
    metadata = (("authorization", f"Bearer {target.key_for(method)}"),)
    with target.channel:
        if method.client_streaming:
            call = target.channel.stream_unary(path, request_serializer=None,
                                               response_deserializer=None)
            return refused(lambda: call(iter([body]), metadata=metadata, timeout=CALL_TIMEOUT))
        unary = target.channel.unary_unary(path, request_serializer=None,
                                           response_deserializer=None)
        return refused(lambda: unary(body, metadata=metadata, timeout=CALL_TIMEOUT))


def test_every_rpc_with_a_timestamp_is_covered() -> None:
    """The issue's list, as the descriptors give it (a new timestamp joins it by itself)."""
    assert {m.name for m, _ in TIMESTAMP_FIELDS} == {
        "ImportOrders", "PublishPlan", "GetPlan", "GetBalance", "GetUpline", "ListSubtree",
        "GetTeamStats", "EnrollReseller", "ImportResellers", "PublishTaxTable", "GetTaxTable"}
    assert ("ImportOrders", "orders[0].paid_at") in {(m.name, p) for m, p in TIMESTAMP_FIELDS}


@pytest.mark.parametrize("stamp, why", [
    (Timestamp(seconds=0, nanos=-1), "nanos -1 is outside 0 to 999999999"),
    (Timestamp(seconds=0, nanos=10**9), "nanos 1000000000 is outside 0 to 999999999"),
    (Timestamp(seconds=MAX_SECONDS + 1), "seconds 253402300800 is outside 0001-01-01 to "
                                         "9999-12-31"),
    (Timestamp(seconds=MIN_SECONDS - 1), "seconds -62135596801 is outside 0001-01-01 to "
                                         "9999-12-31"),
])
def test_timestamps_out_of_range_are_invalid_arguments_naming_the_field(
    running: Running, stamp: Timestamp, why: str,
) -> None:
    head = running.server.app.log_position()
    for method, path in TIMESTAMP_FIELDS:
        refusal = send(running, method, with_value(method, path, stamp))
        assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT, (method.name, refusal)
        assert list(refusal.fields) == [path], (method.name, refusal)
        assert refusal.fields[path].startswith(why), refusal
        assert refusal.reason == "INVALID_INPUT"
    assert running.server.app.log_position() == head


def test_enum_numbers_the_proto_does_not_define_are_invalid_arguments(running: Running) -> None:
    """view = 99 on every write that takes a view, a plan override's scope, a list's order."""
    assert {(m.name, p) for m, p in ENUM_FIELDS} >= {
        ("PlaceOrder", "view"), ("RefundOrder", "view"), ("PublishPlan", "plan.overrides[0].scope"),
        ("ListBalances", "order_by")}
    for method, path in ENUM_FIELDS:
        refusal = send(running, method, with_value(method, path, 99))
        assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT, (method.name, refusal)
        assert list(refusal.fields) == [path], (method.name, refusal)
        assert refusal.fields[path].startswith("99 is not a"), refusal


@pytest.mark.parametrize("method_name, path", [
    ("StorefrontService.GetOrder", "order_id"),
    ("StorefrontService.PlaceOrder", "lines[0].sku"),
    ("StorefrontService.ImportOrders", "orders[0].lines[0].supplier_id"),
    ("ReportService.GetBalance", "account"),
    ("FinanceService.RejectPayout", "reason"),
])
def test_invalid_utf8_in_a_string_is_an_invalid_argument_naming_the_field(
    running: Running, method_name: str, path: str,
) -> None:
    method = next(m for m in METHODS if m.full_name.endswith(method_name))
    body = with_value(method, path, "MARK")
    assert body.count(b"MARK") == 1
    refusal = send(running, method, body.replace(b"MARK", b"\xff\xfe\xc0\x80"))
    assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT
    assert refusal.fields == {path: "is not valid UTF-8"}
    assert refusal.reason == "MALFORMED_REQUEST"


NOT_A_MESSAGE = "the request is not a valid ledger.v1.PlaceOrderRequest message: it "


@pytest.mark.parametrize("body, fields", [
    (b"\x0a\x05ab", {"idempotency_key": "is truncated: its length runs past the end"}),
    (b"\x0f\x00", {"idempotency_key": "has wire type 7, which protobuf does not define"}),
    (b"\xff", {"": NOT_A_MESSAGE + "is truncated"}),
    (b"\x9f\x06", {"": NOT_A_MESSAGE + "has wire type 7, which protobuf does not define"}),
    (b"\x0c", {"idempotency_key": "ends a group it never started"}),
])
def test_undecodable_bodies_are_invalid_arguments(running: Running, body: bytes,
                                                   fields: dict[str, str]) -> None:
    method = next(m for m in METHODS if m.name == "PlaceOrder")
    refusal = send(running, method, body)
    assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT
    assert refusal.fields == fields
    assert refusal.reason == "MALFORMED_REQUEST"
    assert "DecodeError" not in refusal.message and "Unexpected" not in refusal.message


def test_nul_in_a_string_is_refused_on_both_stores(running: Running) -> None:
    """PostgreSQL's text cannot hold U+0000: a read naming one failed its query (INTERNAL),
    and a write carrying one in free text would have stopped the read models."""
    for name, path in (("GetBalance", "account"), ("RejectPayout", "reason"),
                       ("PlaceOrder", "lines[0].category")):
        method = next(m for m in METHODS if m.name == name)
        refusal = send(running, method, with_value(method, path, "a\0b"))
        assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT
        assert refusal.fields == {path: "must not contain NUL (U+0000) characters"}


def test_health_and_reflection_refuse_garbage_too(running: Running) -> None:
    with grpc.insecure_channel(running.target) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=None,
                                    response_deserializer=None)
        assert refused(lambda: check(b"\xff", timeout=10)).code == \
            grpc.StatusCode.INVALID_ARGUMENT
        watch = channel.unary_stream("/grpc.health.v1.Health/Watch", request_serializer=None,
                                     response_deserializer=None)
        assert refused(lambda: list(watch(b"\xff", timeout=10))).code == \
            grpc.StatusCode.INVALID_ARGUMENT
        reflect = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=None, response_deserializer=None)
        assert refused(lambda: list(reflect(iter([b"\xff"]), timeout=10))).code == \
            grpc.StatusCode.INVALID_ARGUMENT
        assert check(b"", timeout=10) == health_pb2.HealthCheckResponse(
            status=health_pb2.HealthCheckResponse.SERVING).SerializeToString()


def test_business_dates_outside_the_calendar_are_refused_and_the_read_models_keep_up(
    running: Running, shop: LedgerClient, admin: LedgerClient, finance: LedgerClient,
) -> None:
    """A backfill dated 0001-01-01 was recorded, and the read models then failed on it for
    good (its month in Asia/Shanghai began in year 0); days and months at the ends of
    Python's calendar answered INTERNAL."""
    team(shop)
    first_day = Timestamp(seconds=MIN_SECONDS)
    answer = shop.storefront.ImportOrders(iter([storefront_pb2.ImportOrdersRequest(orders=[
        storefront_pb2.ImportedOrder(
            order_id="I1", customer_id="c9", reseller_id="carol", currency="CNY",
            lines=[line("tea", 1, 3333, 2000)], payment_id="p1", placed_at=first_day)])]))
    assert answer.imported == 0
    assert [(f.order_id, f.code, f.message) for f in answer.failures] == [
        ("I1", "INVALID_ARGUMENT", f"placed_at: {IN_CALENDAR}")]
    paid = pay(shop, place(shop, "O1").order_id)
    assert paid.status == common_pb2.ORDER_STATUS_PAID
    for call, field in (
        (lambda: admin.report.GetTeamStats(report_pb2.GetTeamStatsRequest(
            reseller_id="alice", month="0001-01")), "month"),
        (lambda: admin.report.GetTeamStats(report_pb2.GetTeamStatsRequest(
            reseller_id="alice", month="9999-12")), "month"),
        (lambda: finance.finance.GetDayStatement(finance_pb2.GetDayStatementRequest(
            day="9999-12-31")), "day"),
        (lambda: admin.admin.SetTeamTarget(admin_pb2.SetTeamTargetRequest(
            idempotency_key="t1", reseller_id="alice", month="0000-01", currency="CNY",
            amount=100)), "month"),
    ):
        refusal = refused(call)
        assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT
        assert list(refusal.fields) == [field]
    balance = shop.report.GetBalance(report_pb2.GetBalanceRequest(
        account="reseller:carol", min_log_position=running.server.app.log_position()),
        timeout=20)
    assert balance.balances[0].frozen == 1599
