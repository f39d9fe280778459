"""Request bytes into messages, checked before any servicer sees them.

grpc's server answers a request its deserializer cannot read with UNKNOWN and the parser's
exception text, and protobuf gladly reads values no field may hold: a timestamp outside
0001-01-01..9999-12-31 or with nanos outside 0..999,999,999 (ToDatetime then raises, and the
call ended INTERNAL), an enum number the proto does not define (proto3 enums are open, so
``view = 99`` arrives as 99). Every service is registered here with a deserializer that never
raises: a request it cannot use becomes ``Malformed``, which the handler answers with
INVALID_ARGUMENT naming the field (a google.rpc.BadRequest) before the servicer runs. The
services, their methods and every field checked are read from the proto descriptors, so a
new RPC or field is covered without a line here.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from ledger.api.calls import observed
from ledger.api.errors import abort
from ledger.domain.errors import InvalidInput

# google.protobuf.Timestamp's documented range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
MIN_SECONDS = -62_135_596_800
MAX_SECONDS = 253_402_300_799
MAX_NANOS = 999_999_999
TIMESTAMP = "google.protobuf.Timestamp"
MALFORMED_REQUEST = "MALFORMED_REQUEST"
# How deeply unknown groups may nest before the body is refused (upb's own limit is 100).
MAX_DEPTH = 100

Violation = tuple[str, str]


@dataclass(frozen=True)
class Malformed:
    """What the deserializer hands on in place of a request it could not use."""

    violations: list[Violation]
    reason: str = InvalidInput.reason

    def error(self) -> InvalidInput:
        return InvalidInput(self.violations, reason=self.reason)


def decoder(message_class: type[Message]) -> Callable[[bytes], Message | Malformed]:
    """A deserializer for ``message_class`` that returns ``Malformed`` instead of raising."""
    name = message_class.DESCRIPTOR.full_name

    def decode(data: bytes) -> Message | Malformed:
        try:
            message = message_class.FromString(data)
        except DecodeError:
            field, why = locate(message_class.DESCRIPTOR, data) or ("", "")
            if not field:
                why = f"the request is not a valid {name} message" + (f": it {why}" if why else "")
            return Malformed([(field, why)], MALFORMED_REQUEST)
        violations: list[Violation] = []
        check_values(message, "", violations)
        if b"\0" in data:  # rare in a request's bytes, and a string holding NUL has one
            check_strings(message, "", violations)
        return Malformed(violations) if violations else message

    return decode


# --- values protobuf reads but no field may hold ---------------------------------------------

# Per message type, the fields that can hold a bad value: enums, timestamps, and messages
# with such fields inside. Most request fields are neither, so a request costs a glance.
_checked_fields: dict[str, tuple[FieldDescriptor, ...]] = {}


def _fields_to_check(descriptor: Descriptor) -> tuple[FieldDescriptor, ...]:
    name = descriptor.full_name
    if name not in _checked_fields:
        _checked_fields[name] = ()  # a message that contains itself adds nothing the first time
        _checked_fields[name] = tuple(
            f for f in descriptor.fields
            if f.type == FieldDescriptor.TYPE_ENUM
            or (f.type == FieldDescriptor.TYPE_MESSAGE
                and (f.message_type.full_name == TIMESTAMP
                     or _fields_to_check(f.message_type)))
        )
    return _checked_fields[name]


def check_values(message: Message, path: str, violations: list[Violation]) -> None:
    """Adds a violation for every enum number the proto does not define and every timestamp
    outside google.protobuf.Timestamp's range, each named by its field path
    (``plan.overrides[0].scope``)."""
    for field in _fields_to_check(message.DESCRIPTOR):
        name = f"{path}{field.name}"
        value = getattr(message, field.name)
        if field.is_repeated:
            for i, item in enumerate(value):
                _check_value(field, item, f"{name}[{i}]", violations)
        elif field.type == FieldDescriptor.TYPE_ENUM or message.HasField(field.name):
            _check_value(field, value, name, violations)


def _check_value(field: FieldDescriptor, value: Any, name: str,
                 violations: list[Violation]) -> None:
    if field.type == FieldDescriptor.TYPE_ENUM:
        if value not in field.enum_type.values_by_number:
            known = ", ".join(v.name for v in field.enum_type.values)
            violations.append((name, f"{value} is not a {field.enum_type.name} value "
                                     f"(one of {known})"))
    elif field.message_type.full_name == TIMESTAMP:
        if not MIN_SECONDS <= value.seconds <= MAX_SECONDS:
            violations.append((name, f"seconds {value.seconds} is outside 0001-01-01 to "
                                     f"9999-12-31 ({MIN_SECONDS} to {MAX_SECONDS})"))
        if not 0 <= value.nanos <= MAX_NANOS:
            violations.append((name, f"nanos {value.nanos} is outside 0 to {MAX_NANOS}"))
    else:
        check_values(value, f"{name}.", violations)


def check_strings(message: Message, path: str, violations: list[Violation]) -> None:
    """Adds a violation for every string holding NUL (U+0000): PostgreSQL's text cannot
    store one, so it would fail a read's query, or stop the read models at the event that
    carried it, where SQLite would take it."""
    for field, value in message.ListFields():
        name = f"{path}{field.name}"
        items = enumerate(value) if field.is_repeated else [(None, value)]
        for i, item in items:
            at = name if i is None else f"{name}[{i}]"
            if field.type == FieldDescriptor.TYPE_STRING and "\0" in item:
                violations.append((at, "must not contain NUL (U+0000) characters"))
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                check_strings(item, f"{at}.", violations)


# --- which field of an undecodable body is at fault ------------------------------------------


class _Unreadable(Exception):
    def __init__(self, path: str, why: str) -> None:
        self.violation = (path, why)


def locate(descriptor: Descriptor, data: bytes) -> Violation | None:
    """The field the protobuf parser stumbled on, and why, read from the wire format
    (``lines[0].sku``: not valid UTF-8); None when no field can be blamed."""
    try:
        _walk(descriptor, data, 0, len(data), "", None, 0)
    except _Unreadable as problem:
        return problem.violation
    return None


def _varint(data: bytes, pos: int, end: int, path: str) -> tuple[int, int]:
    value = shift = 0
    while pos < end and shift < 70:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise _Unreadable(path, "is truncated" if pos >= end else "holds a malformed varint")


def _walk(descriptor: Descriptor | None, data: bytes, pos: int, end: int, path: str,
          group: int | None, depth: int) -> int:
    """Reads fields from ``pos`` to ``end`` (or to the end of ``group``); returns where it
    stopped. ``descriptor`` is None inside an unknown field's group."""
    if depth > MAX_DEPTH:
        raise _Unreadable(path.rstrip("."), "nests too deeply")
    counts: dict[int, int] = {}
    while pos < end:
        tag, pos = _varint(data, pos, end, path.rstrip("."))
        number, wire = tag >> 3, tag & 7
        field = descriptor.fields_by_number.get(number) if descriptor is not None else None
        name = path.rstrip(".")
        if field is not None:
            name = f"{path}{field.name}"
            if field.is_repeated:
                counts[number] = counts.get(number, 0) + 1
                name += f"[{counts[number] - 1}]"
        if number == 0:
            raise _Unreadable(name, "holds a field numbered 0")
        if wire == 0:
            _, pos = _varint(data, pos, end, name)
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > end:
                raise _Unreadable(name, "is truncated")
        elif wire == 2:
            length, pos = _varint(data, pos, end, name)
            if pos + length > end:
                raise _Unreadable(name, "is truncated: its length runs past the end")
            if field is not None:
                _check_bytes(field, data, pos, pos + length, name, depth)
            pos += length
        elif wire == 3:
            pos = _walk(None, data, pos, end, name, number, depth + 1)
        elif wire == 4:
            if group != number:
                raise _Unreadable(name, "ends a group it never started")
            return pos
        else:
            raise _Unreadable(name, f"has wire type {wire}, which protobuf does not define")
    if group is not None:
        raise _Unreadable(path.rstrip("."), "is truncated: a group never ends")
    return pos


def _check_bytes(field: FieldDescriptor, data: bytes, start: int, end: int, name: str,
                 depth: int) -> None:
    if field.type == FieldDescriptor.TYPE_STRING:
        try:
            data[start:end].decode("utf-8")
        except UnicodeDecodeError:
            raise _Unreadable(name, "is not valid UTF-8") from None
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        _walk(field.message_type, data, start, end, f"{name}.", None, depth + 1)


# --- registering services with these deserializers -------------------------------------------


async def refuse_malformed(request: object, context: grpc.aio.ServicerContext) -> None:
    if isinstance(request, Malformed):
        await abort(context, request.error())


async def _checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
                   ) -> AsyncIterator[Any]:
    """A client stream whose first unusable message ends the call with INVALID_ARGUMENT."""
    async for request in requests:
        await refuse_malformed(request, context)
        yield request


def _guarded(behavior: Callable[..., Any], client_streaming: bool) -> Callable[..., Any]:
    """``behavior`` behind the check: a coroutine or an async generator, as it was."""

    async def admitted(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if client_streaming:
            return _checked(request, context)
        await refuse_malformed(request, context)
        return request

    if inspect.isasyncgenfunction(behavior):
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async for reply in behavior(await admitted(request, context), context):
                yield reply

        return stream

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await behavior(await admitted(request, context), context)

    return call


HANDLERS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_service(server: grpc.aio.Server, service: ServiceDescriptor, servicer: object,
                quiet: Callable[[], bool] = lambda: False) -> None:
    """Registers ``servicer`` for every method of ``service``, as the generated
    ``add_…Servicer_to_server`` would, but with deserializers that never raise."""
    handlers = {}
    for method in service.methods:
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        make = HANDLERS[(method.client_streaming, method.server_streaming)]
        behavior = _guarded(getattr(servicer, method.name), method.client_streaming)
        handlers[method.name] = make(
            observed(service.full_name, method.name, behavior, quiet),  # its line: calls.py
            request_deserializer=decoder(request),
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)
