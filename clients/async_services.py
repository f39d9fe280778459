"""The asyncio client's services: those of services.py, each call awaited (AsyncUnary)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

from ledger.clients import edge
from ledger.clients.calls import AsyncUnary, Session
from ledger.clients.edge import Amount, Balance, Line
from ledger.clients.services import _Service

from ledger.v1 import (
    admin_pb2_grpc,
    audit_pb2_grpc,
    finance_pb2_grpc,
    report_pb2,
    report_pb2_grpc,
    storefront_pb2,
    storefront_pb2_grpc,
)


class _AsyncService(_Service):
    _wrap = AsyncUnary


class AsyncStorefront(_AsyncService):
    """StorefrontService (see services.Storefront)."""

    def __init__(
        self, stub: storefront_pb2_grpc.StorefrontServiceAsyncStub, session: Session
    ) -> None:
        super().__init__(stub, session)
        self.PlaceOrder = AsyncUnary(stub.PlaceOrder, session)
        self.PayOrder = AsyncUnary(stub.PayOrder, session)
        self.CompleteOrder = AsyncUnary(stub.CompleteOrder, session)
        self.CancelOrder = AsyncUnary(stub.CancelOrder, session)
        self.RefundOrder = AsyncUnary(stub.RefundOrder, session)
        self.OpenAfterSale = AsyncUnary(stub.OpenAfterSale, session)
        self.CloseAfterSale = AsyncUnary(stub.CloseAfterSale, session)
        self.EnrollReseller = AsyncUnary(stub.EnrollReseller, session)
        self.BindCustomer = AsyncUnary(stub.BindCustomer, session)
        self.GetOrder = AsyncUnary(stub.GetOrder, session)
        self.RequestWithdrawal = AsyncUnary(stub.RequestWithdrawal, session)
        self.ImportOrders = partial(stub.ImportOrders, metadata=session.metadata)
        self.ImportResellers = partial(stub.ImportResellers, metadata=session.metadata)

    # The same operations with amounts in the currency's unit (Decimal), ids as arguments.

    async def place_order(
        self,
        order_id: str,
        *,
        customer_id: str,
        currency: str,
        lines: Sequence[Line],
        reseller_id: str = "",
        idempotency_key: str = "",
    ) -> storefront_pb2.PlaceOrderResponse:
        return await self.PlaceOrder(
            edge.place_order(order_id, customer_id, currency, lines, reseller_id, idempotency_key)
        )

    async def pay_order(
        self,
        order_id: str,
        *,
        payment_id: str,
        amount: Amount,
        currency: str,
        idempotency_key: str = "",
    ) -> storefront_pb2.PayOrderResponse:
        return await self.PayOrder(
            edge.pay_order(order_id, payment_id, amount, currency, idempotency_key)
        )

    async def refund_order(
        self,
        order_id: str,
        *,
        refund_id: str,
        lines: Mapping[int, Amount],
        currency: str,
        reason: str = "",
        idempotency_key: str = "",
    ) -> storefront_pb2.RefundOrderResponse:
        return await self.RefundOrder(
            edge.refund_order(order_id, refund_id, lines, currency, reason, idempotency_key)
        )

    async def request_withdrawal(
        self, reseller_id: str, *, amount: Amount, currency: str, idempotency_key: str = ""
    ) -> storefront_pb2.RequestWithdrawalResponse:
        return await self.RequestWithdrawal(
            edge.request_withdrawal(reseller_id, amount, currency, idempotency_key)
        )


class AsyncAdmin(_AsyncService):
    """AdminService (see services.Admin)."""

    def __init__(self, stub: admin_pb2_grpc.AdminServiceAsyncStub, session: Session) -> None:
        super().__init__(stub, session)
        self.PublishPlan = AsyncUnary(stub.PublishPlan, session)
        self.GetPlan = AsyncUnary(stub.GetPlan, session)
        self.MoveReseller = AsyncUnary(stub.MoveReseller, session)
        self.SetRank = AsyncUnary(stub.SetRank, session)
        self.RebindCustomer = AsyncUnary(stub.RebindCustomer, session)
        self.GetReseller = AsyncUnary(stub.GetReseller, session)
        self.SetTeamTarget = AsyncUnary(stub.SetTeamTarget, session)
        self.RunSettlement = AsyncUnary(stub.RunSettlement, session)


class AsyncFinance(_AsyncService):
    """FinanceService (see services.Finance)."""

    def __init__(self, stub: finance_pb2_grpc.FinanceServiceAsyncStub, session: Session) -> None:
        super().__init__(stub, session)
        self.ListPayable = AsyncUnary(stub.ListPayable, session)
        self.RequestPayout = AsyncUnary(stub.RequestPayout, session)
        self.ApprovePayout = AsyncUnary(stub.ApprovePayout, session)
        self.RejectPayout = AsyncUnary(stub.RejectPayout, session)
        self.MarkPayoutPaid = AsyncUnary(stub.MarkPayoutPaid, session)
        self.MarkPayoutFailed = AsyncUnary(stub.MarkPayoutFailed, session)
        self.GetPayout = AsyncUnary(stub.GetPayout, session)
        self.CloseDay = AsyncUnary(stub.CloseDay, session)
        self.GetDayStatement = AsyncUnary(stub.GetDayStatement, session)
        self.GetAccountStatement = AsyncUnary(stub.GetAccountStatement, session)


class AsyncReport(_AsyncService):
    """ReportService (see services.Report)."""

    def __init__(self, stub: report_pb2_grpc.ReportServiceAsyncStub, session: Session) -> None:
        super().__init__(stub, session)
        self.GetBalance = AsyncUnary(stub.GetBalance, session)
        self.ListBalances = AsyncUnary(stub.ListBalances, session)
        self.GetTeamMember = AsyncUnary(stub.GetTeamMember, session)
        self.GetUpline = AsyncUnary(stub.GetUpline, session)
        self.ListSubtree = AsyncUnary(stub.ListSubtree, session)
        self.GetTeamStats = AsyncUnary(stub.GetTeamStats, session)
        self.GetProjectionStatus = AsyncUnary(stub.GetProjectionStatus, session)

    async def balances(self, account: str) -> list[Balance]:
        """``account``'s balances (one per currency) in the currency's unit, including
        every write this client made (read-your-writes)."""
        answer = await self.GetBalance(report_pb2.GetBalanceRequest(account=account))
        return [Balance.of(b) for b in answer.balances]


class AsyncAudit(_AsyncService):
    """AuditService (see services.Audit)."""

    def __init__(self, stub: audit_pb2_grpc.AuditServiceAsyncStub, session: Session) -> None:
        super().__init__(stub, session)
        self.StreamEvents = partial(stub.StreamEvents, metadata=session.metadata)
        self.GetSignedHead = AsyncUnary(stub.GetSignedHead, session)
        self.ListSignedHeads = AsyncUnary(stub.ListSignedHeads, session)
        self.GetInclusionProof = AsyncUnary(stub.GetInclusionProof, session)
        self.GetConsistencyProof = AsyncUnary(stub.GetConsistencyProof, session)
        self.GetPublicKeys = AsyncUnary(stub.GetPublicKeys, session)
