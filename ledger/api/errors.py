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

from ledger import metrics
from ledger.api import calls
from ledger.application.group_commit import Overloaded
from ledger.domain import errors
from ledger.projections.db import StoreUnavailable

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


# ErrorInfo reasons of the statuses that are not a LedgerError's.
WRITE_QUEUE_FULL = "WRITE_QUEUE_FULL"
STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
READ_MODELS_UNAVAILABLE = "READ_MODELS_UNAVAILABLE"
INTERNAL_ERROR = "INTERNAL_ERROR"


def _status(code: int, message: str, reason: str) -> status_pb2.Status:
    status = status_pb2.Status(code=code, message=message)
    status.details.append(_pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN)))
    return status


def status_for(error: BaseException, *, incident: str = "", log_it: bool = True
               ) -> status_pb2.Status:
    """The status a client sees for ``error``, always with an ErrorInfo.

    ``log_it``: whether the store's and unexpected errors are logged here; a call's own
    error is not (``abort``): its request line carries it. ``incident`` names an internal
    error in the message (a call's request id; else one is made)."""
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
        return _status(code_pb2.RESOURCE_EXHAUSTED, str(error), WRITE_QUEUE_FULL)
    if isinstance(error, PersistenceError | StoreUnavailable):
        metrics.STORE_ERRORS.labels("call").inc()  # a call answered UNAVAILABLE for it
    if isinstance(error, PersistenceError):
        if log_it:
            log.error("event store unavailable", error=repr(error))
        return _status(code_pb2.UNAVAILABLE,
                       "the event store is unavailable; nothing was written, retry later",
                       STORE_UNAVAILABLE)
    if isinstance(error, StoreUnavailable):  # the outage itself is logged once, elsewhere
        return _status(code_pb2.UNAVAILABLE,
                       "the read models' database is unavailable; retry later",
                       READ_MODELS_UNAVAILABLE)
    incident = incident or uuid.uuid4().hex[:12]
    if log_it:
        log.error("internal error", incident=incident, exc_info=error)
    return _status(code_pb2.INTERNAL,
                   f"internal error {incident}; nothing was written (see server log)",
                   INTERNAL_ERROR)


def reason_of(status: status_pb2.Status) -> str:
    """The ErrorInfo reason a status carries ("" if none)."""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


async def _abort_with(context: grpc.aio.ServicerContext, status: status_pb2.Status,
                      error: BaseException | None = None) -> NoReturn:
    """Ends the call with ``status``: its request id is added to the message the client
    sees and to the trailing metadata, and the call's log line is told how it ended."""
    call = calls.current()
    if call is not None:
        status.message = f"{status.message} [request {call.request_id}]"
        logged = status.code in (code_pb2.INTERNAL, code_pb2.UNAVAILABLE)  # the cause, too
        call.ended_with(code_pb2.Code.Name(status.code), reason_of(status),
                        error if logged else None)
        calls.finish(context)  # before the status goes: the abort sends it at once
    grpc_status = rpc_status.to_status(status)
    await context.abort(grpc_status.code, grpc_status.details,
                        tuple(grpc_status.trailing_metadata) + calls.trailing(call))
    raise AssertionError("abort returned")  # pragma: no cover


async def abort(context: grpc.aio.ServicerContext, error: BaseException) -> NoReturn:
    call = calls.current()
    status = status_for(error, incident=call.request_id if call else "",
                        log_it=call is None)
    await _abort_with(context, status, error)


async def abort_code(context: grpc.aio.ServicerContext, code: int, message: str,
                     reason: str) -> NoReturn:
    """Ends the call with a status of no LedgerError (authentication, deadlines), with an
    ErrorInfo ``reason`` as every status has."""
    await _abort_with(context, _status(code, message, reason))
