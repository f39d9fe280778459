"""Every refusal becomes a precise gRPC status with google.rpc details; never UNKNOWN.

Malformed input carries a BadRequest with one FieldViolation per field; every status carries
an ErrorInfo whose reason a client can switch on (e.g. REFUND_EXCEEDS_PAID).
"""

from __future__ import annotations

import uuid
from typing import NoReturn

import grpc
import structlog
from eventsourcing.persistence import PersistenceError
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ledger.application.group_commit import Overloaded
from ledger.domain import errors
from projections.db import StoreUnavailable

log = structlog.get_logger(__name__)

DOMAIN = "ledger.s2b2c"

CODES: dict[type[errors.LedgerError], int] = {
    errors.InvalidInput: code_pb2.INVALID_ARGUMENT,
    errors.RuleViolation: code_pb2.FAILED_PRECONDITION,
    errors.NotFound: code_pb2.NOT_FOUND,
    errors.AlreadyExists: code_pb2.ALREADY_EXISTS,
    errors.AccessDenied: code_pb2.PERMISSION_DENIED,
    errors.Conflict: code_pb2.ABORTED,
}


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def status_for(error: BaseException) -> status_pb2.Status:
    """The status a client sees for ``error``."""
    if isinstance(error, errors.LedgerError):
        status = status_pb2.Status(code=CODES[type(error)], message=error.message)
        if isinstance(error, errors.InvalidInput):
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in error.violations
                ]
            )
            status.details.append(_pack(bad))
        info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN)
        status.details.append(_pack(info))
        return status
    if isinstance(error, Overloaded):
        return status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=str(error))
    if isinstance(error, PersistenceError):
        log.error("event store unavailable", error=repr(error))
        return status_pb2.Status(
            code=code_pb2.UNAVAILABLE,
            message="the event store is unavailable; nothing was written, retry later",
        )
    if isinstance(error, StoreUnavailable):  # the outage itself is logged once, elsewhere
        return status_pb2.Status(
            code=code_pb2.UNAVAILABLE,
            message="the read models' database is unavailable; retry later",
        )
    incident = uuid.uuid4().hex[:12]
    log.error("internal error", incident=incident, exc_info=error)
    return status_pb2.Status(
        code=code_pb2.INTERNAL,
        message=f"internal error {incident}; nothing was written (see server log)",
    )


async def abort(context: grpc.aio.ServicerContext, error: BaseException) -> NoReturn:
    await context.abort_with_status(rpc_status.to_status(status_for(error)))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


async def abort_code(context: grpc.aio.ServicerContext, code: int, message: str) -> NoReturn:
    await context.abort_with_status(
        rpc_status.to_status(status_pb2.Status(code=code, message=message))
    )
    raise AssertionError("abort_with_status returned")  # pragma: no cover
