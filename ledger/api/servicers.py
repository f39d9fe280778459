"""The StorefrontService and AdminService: requests in, commands to the application, answers out."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from eventsourcing.persistence import InterfaceError, OperationalError
from google.rpc import code_pb2

from ledger.api import calls, convert
from ledger.api.auth import ADMIN, STOREFRONT, KeyRing
from ledger.api.errors import abort, abort_code, status_for
from ledger.api.payees import PayeeViews
from ledger.application import commands as c
from ledger.application.audit_trail import AuditTrail
from ledger.application.group_commit import GroupCommitter
from ledger.application.ledger_app import LedgerApplication, Outcome
from ledger.application.settlement import Settlement
from ledger.application.steps import Steps
from ledger.application.tree_import import plan_import
from ledger.domain.errors import InvalidInput, LedgerError
from ledger.projections.db import StoreUnavailable
from ledger.projections.reader import ReadModels
from ledger.v1 import admin_pb2, admin_pb2_grpc, common_pb2, storefront_pb2, storefront_pb2_grpc

R = TypeVar("R")
# A read waits at most this long for the read models when the call has no deadline.
MAX_WAIT = 30.0
MAX_IMPORT_BATCH = 1000
MAX_REPORTED_FAILURES = 1000
# ErrorInfo reasons of the refusals made here, before any command runs.
API_KEY_MISSING = "API_KEY_MISSING"
API_KEY_UNKNOWN = "API_KEY_UNKNOWN"
WRONG_SERVICE_FOR_ROLE = "WRONG_SERVICE_FOR_ROLE"
READ_MODELS_BEHIND = "READ_MODELS_BEHIND"
Method = Callable[[Any, Any, grpc.aio.ServicerContext, c.Caller], Awaitable[Any]]


def rpc(*roles: str) -> Callable[[Method], Callable[..., Awaitable[Any]]]:
    """Authenticates the caller for one of ``roles`` and turns every failure into a clear
    status."""

    def wrap(method: Method) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(method)
        async def handler(self: Base, request: Any, context: grpc.aio.ServicerContext) -> Any:
            caller = await self.authenticate(context, roles)
            try:
                if self.store_down():
                    raise StoreUnavailable("the store cannot be reached; retry later")
                return await method(self, request, context, caller)
            except grpc.aio.AbortError:
                raise
            except Exception as error:
                await abort(context, error)

        return handler

    return wrap


def with_article(word: str) -> str:
    """"an admin", "a storefront": for messages naming roles."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


class Base:
    def __init__(self, app: LedgerApplication, writer: GroupCommitter, keys: KeyRing,
                 models: ReadModels, processed: Callable[[], int], *,
                 store_down: Callable[[], bool] = lambda: False,
                 audit: AuditTrail | None = None, payees: PayeeViews | None = None) -> None:
        """``store_down``: whether the health probe last found the store unreachable; calls
        are then answered UNAVAILABLE at once, rather than each waiting on a connection
        that cannot be made until its deadline."""
        self.store_down = store_down
        self.audit = audit  # signs heads (CloseDay) and answers proofs (AuditService)
        self.payees = payees  # identities for finance keys (TaxService, CloseQuarter)
        self.app = app
        self.writer = writer
        self.keys = keys
        self.models = models
        self.processed = processed

    async def caught_up(self, position: int, context: grpc.aio.ServicerContext) -> int:
        """Waits until the read models have processed ``position``; returns where they are.

        Only a position the log has reached is waited for: a receipt is handed out after its
        write committed, so a position past the log's end is no receipt (a client's bug) and
        is refused at once rather than waited on until the deadline."""
        if position < 0:
            raise InvalidInput([("min_log_position", "must be 0 (none) or a receipt's "
                                        "log_position")])
        current = self.processed()
        if current >= position:
            return current
        head = await asyncio.to_thread(self.app.log_position)
        if position > head:
            raise InvalidInput([("min_log_position", f"no write has reached log "
                                        f"position {position}; the log ends at {head}")])
        remaining = context.time_remaining()
        deadline = time.monotonic() + min(
            remaining if remaining is not None else MAX_WAIT, MAX_WAIT)
        while current < position:
            if time.monotonic() >= deadline:
                await abort_code(context, code_pb2.DEADLINE_EXCEEDED,
                                 f"read models reached {current}, not {position}, in time",
                                 READ_MODELS_BEHIND)
            await asyncio.sleep(0.005)
            current = self.processed()
        return current

    async def authenticate(
        self, context: grpc.aio.ServicerContext, roles: tuple[str, ...]
    ) -> c.Caller:
        metadata = dict(context.invocation_metadata() or ())
        header = str(metadata.get("authorization", ""))
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            await abort_code(context, code_pb2.UNAUTHENTICATED,
                             "missing API key: send metadata 'authorization: Bearer <key>'",
                             API_KEY_MISSING)
        key = self.keys.authenticate(token.strip())
        if key is None:
            await abort_code(context, code_pb2.UNAUTHENTICATED, "unknown API key",
                             API_KEY_UNKNOWN)
        call = calls.current()
        if call is not None:  # the key's platform and name (never the key) go on its line
            call.platform, call.key = key.platform, key.name
        if key.role not in roles:
            await abort_code(context, code_pb2.PERMISSION_DENIED,
                             f"{with_article(key.role)} key cannot call this service "
                             f"(it needs {' or '.join(with_article(r) for r in roles)} key)",
                             WRONG_SERVICE_FOR_ROLE)
        return c.Caller(key.platform, key.name, key.role)

    def steps(self, context: grpc.aio.ServicerContext) -> Steps:
        """How a use case of the application runs in this call: its writes on the call's
        log line, its reads retried once on a lost connection, its waits within the
        call's deadline."""
        return Steps(self.write, self.read, functools.partial(self.caught_up, context=context))

    async def write(self, caller: c.Caller, command: c.Command) -> tuple[Outcome, Any]:
        """Queues the command for the next group commit; returns its outcome and its answer."""
        outcome = await self.writer.submit_async(caller, command)
        calls.wrote(outcome.log_position, outcome.replayed)
        if outcome.answer is not None:
            return outcome, outcome.answer
        return outcome, await self.read(self.app.answer, outcome.ref)

    async def read(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        return await asyncio.to_thread(self._read_once_more_if_lost, fn, *args, **kwargs)

    def _read_once_more_if_lost(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """A read that met a lost connection of the event store's pool is read again once,
        after the pool's dead connections are replaced (reads change nothing: no harm)."""
        try:
            return fn(*args, **kwargs)
        except (OperationalError, InterfaceError):
            self.app.check_connections()
            return fn(*args, **kwargs)

    async def reply(self, caller: c.Caller, command: c.Command, response: Callable[..., R],
                    **answer: Callable[[Any], Any]) -> R:
        """Writes the command and answers with what it changed (one field, e.g.
        ``order=convert.order``, given the aggregate) and the write's receipt."""
        outcome, changed = await self.write(caller, command)
        [(name, to_message)] = answer.items()
        return response(**{name: to_message(changed)}, receipt=convert.receipt(outcome))

    async def order_reply(self, caller: c.Caller, command: c.Command,
                          response: Callable[..., R], view: int) -> R:
        """The writes that change an order answer with it, in the view asked for."""
        return await self.reply(caller, command, response,
                                order=functools.partial(convert.order, view=view))


class StorefrontService(Base, storefront_pb2_grpc.StorefrontServiceServicer):
    @rpc(STOREFRONT)
    async def PlaceOrder(self, request, context, caller):  # type: ignore[no-untyped-def]
        return await self.order_reply(caller, convert.place_order(request),
                                      storefront_pb2.PlaceOrderResponse, request.view)

    @rpc(STOREFRONT)
    async def PayOrder(self, request, context, caller):  # type: ignore[no-untyped-def]
        command = c.PayOrder(request.idempotency_key, request.order_id, request.payment_id,
                             request.amount)
        return await self.order_reply(caller, command, storefront_pb2.PayOrderResponse,
                                      request.view)

    @rpc(STOREFRONT)
    async def CompleteOrder(self, request, context, caller):  # type: ignore[no-untyped-def]
        command = c.CompleteOrder(request.idempotency_key, request.order_id)
        return await self.order_reply(caller, command, storefront_pb2.CompleteOrderResponse,
                                      request.view)

    @rpc(STOREFRONT)
    async def CancelOrder(self, request, context, caller):  # type: ignore[no-untyped-def]
        command = c.CancelOrder(request.idempotency_key, request.order_id, request.reason)
        return await self.order_reply(caller, command, storefront_pb2.CancelOrderResponse,
                                      request.view)

    @rpc(STOREFRONT)
    async def RefundOrder(self, request, context, caller):  # type: ignore[no-untyped-def]
        command = c.RefundOrder(
            request.idempotency_key, request.order_id, request.refund_id,
            tuple(c.RefundLineRequest(x.line_no, x.amount) for x in request.lines),
            request.reason,
        )
        outcome, order = await self.write(caller, command)
        return storefront_pb2.RefundOrderResponse(
            order=convert.order(order, request.view),
            refund=convert.refund(order.refunds[outcome.ref.refund_id]),
            receipt=convert.receipt(outcome),
        )

    @rpc(STOREFRONT)
    async def OpenAfterSale(self, request, context, caller):  # type: ignore[no-untyped-def]
        command = c.OpenAfterSale(request.idempotency_key, request.order_id, request.case_id,
                                  request.line_no, request.reason)
        return await self.order_reply(caller, command, storefront_pb2.OpenAfterSaleResponse,
                                      request.view)

    @rpc(STOREFRONT)
    async def CloseAfterSale(self, request, context, caller):  # type: ignore[no-untyped-def]
        command = c.CloseAfterSale(request.idempotency_key, request.order_id, request.case_id,
                                   request.resolution)
        return await self.order_reply(caller, command, storefront_pb2.CloseAfterSaleResponse,
                                      request.view)

    @rpc(STOREFRONT)
    async def EnrollReseller(self, request, context, caller):  # type: ignore[no-untyped-def]
        return await self.reply(caller, convert.enroll_reseller(request),
                                storefront_pb2.EnrollResellerResponse,
                                reseller=convert.reseller)

    @rpc(STOREFRONT)
    async def BindCustomer(self, request, context, caller):  # type: ignore[no-untyped-def]
        command = c.BindCustomer(request.idempotency_key, request.customer_id,
                                 request.reseller_id)
        return await self.reply(caller, command, storefront_pb2.BindCustomerResponse,
                                binding=convert.binding)

    @rpc(STOREFRONT)
    async def GetOrder(self, request, context, caller):  # type: ignore[no-untyped-def]
        order = await self.read(self.app.order, caller, request.order_id)
        return storefront_pb2.GetOrderResponse(order=convert.order(order))

    @rpc(STOREFRONT)
    async def RequestWithdrawal(self, request, context, caller):  # type: ignore[no-untyped-def]
        command = c.RequestPayout(request.idempotency_key, f"reseller:{request.reseller_id}",
                                  request.currency, request.amount)
        return await self.reply(caller, command, storefront_pb2.RequestWithdrawalResponse,
                                payout=convert.payout)


    @rpc(STOREFRONT)
    async def ImportOrders(self, request_iterator, context, caller):  # type: ignore[no-untyped-def]
        """Each message's orders are queued at once, so they share group commits."""
        orders = imported = already = position = 0
        failures: list[storefront_pb2.ImportFailure] = []
        async for batch in request_iterator:
            if len(batch.orders) > MAX_IMPORT_BATCH:
                raise InvalidInput([("orders", f"at most {MAX_IMPORT_BATCH} per message")])
            queued = [(o.order_id, self.writer.submit_async(caller, convert.imported_order(o)))
                      for o in batch.orders]
            for order_id, write in queued:
                orders += 1
                try:
                    outcome = await write
                except Exception as error:  # reported per order, as the single call would
                    status = status_for(error)
                    failures.append(storefront_pb2.ImportFailure(
                        order_id=order_id, code=code_pb2.Code.Name(status.code),
                        message=status.message))
                else:
                    imported += 1
                    already += outcome.replayed
                    position = max(position, outcome.log_position)
        if imported:
            calls.wrote(position, already == imported)
        return storefront_pb2.ImportOrdersResponse(
            orders=orders, imported=imported, failures=failures[:MAX_REPORTED_FAILURES],
            receipt=common_pb2.WriteReceipt(log_position=position))


    @rpc(STOREFRONT)
    async def ImportResellers(self, request_iterator, context, caller):  # type: ignore[no-untyped-def]
        """Each message's members are queued at once, in the order ``plan_import`` gives;
        those it refuses are reported without being queued."""
        members = imported = already = position = 0
        failures: list[storefront_pb2.ImportResellerFailure] = []

        def failed(reseller_id: str, error: BaseException) -> None:
            status = status_for(error)
            failures.append(storefront_pb2.ImportResellerFailure(
                reseller_id=reseller_id, code=code_pb2.Code.Name(status.code),
                reason=error.reason if isinstance(error, LedgerError) else "",
                message=status.message))

        async for batch in request_iterator:
            if len(batch.members) > MAX_IMPORT_BATCH:
                raise InvalidInput([("members", f"at most {MAX_IMPORT_BATCH} per message")])
            plan = plan_import([convert.imported_reseller(m) for m in batch.members])
            queued = [(m.reseller_id, self.writer.submit_async(caller, m)) for m in plan.queued]
            members += len(batch.members)
            for reseller_id, refusal in plan.refused:
                failed(reseller_id, refusal)
            for reseller_id, write in queued:
                try:
                    outcome = await write
                except Exception as error:  # reported per member, as the single call would
                    failed(reseller_id, error)
                else:
                    imported += 1
                    already += outcome.replayed
                    position = max(position, outcome.log_position)
        if imported:
            calls.wrote(position, already == imported)
        return storefront_pb2.ImportResellersResponse(
            members=members, imported=imported, already_imported=already,
            failures=failures[:MAX_REPORTED_FAILURES],
            receipt=common_pb2.WriteReceipt(log_position=position))


class AdminService(Base, admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, *parts: Any, **gate: Any) -> None:
        super().__init__(*parts, **gate)
        self.settlement = Settlement(self.app, self.models)

    @rpc(ADMIN)
    async def PublishPlan(self, request, context, caller):  # type: ignore[no-untyped-def]
        outcome, book = await self.write(caller, convert.publish_plan(request))
        return admin_pb2.PublishPlanResponse(
            plan=convert.plan(book.plan_version(outcome.ref.published_version)),
            receipt=convert.receipt(outcome),
        )

    @rpc(ADMIN)
    async def GetPlan(self, request, context, caller):  # type: ignore[no-untyped-def]
        at = convert.from_timestamp(request.at, request.HasField("at"))
        plan = await self.read(self.app.plan, caller.platform_id, version=request.version, at=at)
        return admin_pb2.GetPlanResponse(plan=convert.plan(plan))

    @rpc(ADMIN)
    async def MoveReseller(self, request, context, caller):  # type: ignore[no-untyped-def]
        command = c.MoveReseller(request.idempotency_key, request.reseller_id,
                                 request.new_sponsor_id, request.reason)
        return await self.reply(caller, command, admin_pb2.MoveResellerResponse,
                                reseller=convert.reseller)

    @rpc(ADMIN)
    async def SetRank(self, request, context, caller):  # type: ignore[no-untyped-def]
        command = c.SetRank(request.idempotency_key, request.reseller_id, request.rank)
        return await self.reply(caller, command, admin_pb2.SetRankResponse,
                                reseller=convert.reseller)

    @rpc(ADMIN)
    async def RebindCustomer(self, request, context, caller):  # type: ignore[no-untyped-def]
        command = c.RebindCustomer(request.idempotency_key, request.customer_id,
                                   request.reseller_id, request.reason)
        return await self.reply(caller, command, admin_pb2.RebindCustomerResponse,
                                binding=convert.binding)

    @rpc(ADMIN)
    async def GetReseller(self, request, context, caller):  # type: ignore[no-untyped-def]
        reseller = await self.read(self.app.reseller, caller.platform_id, request.reseller_id)
        return admin_pb2.GetResellerResponse(reseller=convert.reseller(reseller))

    @rpc(ADMIN)
    async def RunSettlement(self, request, context, caller):  # type: ignore[no-untyped-def]
        """Settles what is due now (see application/settlement.py)."""
        outcome, run = await self.settlement.run(self.steps(context), caller,
                                                 request.idempotency_key)
        return admin_pb2.RunSettlementResponse(
            settled_orders=convert.order_refs(run.orders),
            settled_order_ids=[k.order_id for k in run.orders],
            receipt=convert.receipt(outcome))

    @rpc(ADMIN)
    async def SetTeamTarget(self, request, context, caller):  # type: ignore[no-untyped-def]
        command = c.SetTeamTarget(request.idempotency_key, request.reseller_id, request.month,
                                  request.currency, request.amount)
        return await self.reply(caller, command, admin_pb2.SetTeamTargetResponse,
                                reseller=convert.reseller)
