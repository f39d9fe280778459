"""The sync client's services: every RPC of each, as a typed call with the SDK's rules
(calls.py: a default deadline, an idempotency key per logical write, retries on UNAVAILABLE
and ABORTED only, read-your-writes), plus, where money is given or read, the same
operations with amounts in the currency's unit (edge.py).

Each RPC keeps its generated name and takes its generated request message
(``client.storefront.PlaceOrder(storefront_pb2.PlaceOrderRequest(...))``); the streaming ones
(``ImportOrders``, ``ImportResellers``, ``StreamEvents``) are the stub's own with the API key
added, neither retried (a stream cannot be replayed from a consumed iterator) nor bounded by
the default deadline (give ``timeout=``). An RPC added to a service later is reached all the
same (``_Service.__getattr__``), wrapped alike, only without its own type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from ledger.clients import edge
from ledger.clients.calls import Session, Unary
from ledger.clients.edge import Amount, Balance, Line

from ledger.v1 import (
    admin_pb2_grpc,
    audit_pb2_grpc,
    finance_pb2_grpc,
    report_pb2,
    report_pb2_grpc,
    storefront_pb2,
    storefront_pb2_grpc,
)


class _Service:
    """A service's calls; an RPC without an attribute of its own (one added to the proto
    after this module was written) is wrapped on first use, untyped."""

    _wrap: Any = Unary

    def __init__(self, stub: Any, session: Session) -> None:
        self._stub = stub
        self._session = session

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)  # AttributeError for what the service lacks
        return self._wrap(method, self._session)


class Storefront(_Service):
    """StorefrontService: every method, as in the module docstring."""

    def __init__(self, stub: storefront_pb2_grpc.StorefrontServiceStub, session: Session) -> None:
        super().__init__(stub, session)
        self.PlaceOrder = Unary(stub.PlaceOrder, session)
        self.PayOrder = Unary(stub.PayOrder, session)
        self.CompleteOrder = Unary(stub.CompleteOrder, session)
        self.CancelOrder = Unary(stub.CancelOrder, session)
        self.RefundOrder = Unary(stub.RefundOrder, session)
        self.OpenAfterSale = Unary(stub.OpenAfterSale, session)
        self.CloseAfterSale = Unary(stub.CloseAfterSale, session)
        self.EnrollReseller = Unary(stub.EnrollReseller, session)
        self.BindCustomer = Unary(stub.BindCustomer, session)
        self.GetOrder = Unary(stub.GetOrder, session)
        self.RequestWithdrawal = Unary(stub.RequestWithdrawal, session)
        self.ImportOrders = partial(stub.ImportOrders, metadata=session.metadata)
        self.ImportResellers = partial(stub.ImportResellers, metadata=session.metadata)

    # The same operations with amounts in the currency's unit (Decimal), ids as arguments.

    def place_order(
        self,
        order_id: str,
        *,
        customer_id: str,
        currency: str,
        lines: Sequence[Line],
        reseller_id: str = "",
        idempotency_key: str = "",
    ) -> storefront_pb2.PlaceOrderResponse:
        return self.PlaceOrder(
            edge.place_order(order_id, customer_id, currency, lines, reseller_id, idempotency_key)
        )

    def pay_order(
        self,
        order_id: str,
        *,
        payment_id: str,
        amount: Amount,
        currency: str,
        idempotency_key: str = "",
    ) -> storefront_pb2.PayOrderResponse:
        return self.PayOrder(
            edge.pay_order(order_id, payment_id, amount, currency, idempotency_key)
        )

    def refund_order(
        self,
        order_id: str,
        *,
        refund_id: str,
        lines: Mapping[int, Amount],
        currency: str,
        reason: str = "",
        idempotency_key: str = "",
    ) -> storefront_pb2.RefundOrderResponse:
        return self.RefundOrder(
            edge.refund_order(order_id, refund_id, lines, currency, reason, idempotency_key)
        )

    def request_withdrawal(
        self, reseller_id: str, *, amount: Amount, currency: str, idempotency_key: str = ""
    ) -> storefront_pb2.RequestWithdrawalResponse:
        return self.RequestWithdrawal(
            edge.request_withdrawal(reseller_id, amount, currency, idempotency_key)
        )


class Admin(_Service):
    """AdminService: every method, as in the module docstring."""

    def __init__(self, stub: admin_pb2_grpc.AdminServiceStub, session: Session) -> None:
        super().__init__(stub, session)
        self.PublishPlan = Unary(stub.PublishPlan, session)
        self.GetPlan = Unary(stub.GetPlan, session)
        self.MoveReseller = Unary(stub.MoveReseller, session)
        self.SetRank = Unary(stub.SetRank, session)
        self.RebindCustomer = Unary(stub.RebindCustomer, session)
        self.GetReseller = Unary(stub.GetReseller, session)
        self.SetTeamTarget = Unary(stub.SetTeamTarget, session)
        self.RunSettlement = Unary(stub.RunSettlement, session)


class Finance(_Service):
    """FinanceService: every method, as in the module docstring."""

    def __init__(self, stub: finance_pb2_grpc.FinanceServiceStub, session: Session) -> None:
        super().__init__(stub, session)
        self.ListPayable = Unary(stub.ListPayable, session)
        self.RequestPayout = Unary(stub.RequestPayout, session)
        self.ApprovePayout = Unary(stub.ApprovePayout, session)
        self.RejectPayout = Unary(stub.RejectPayout, session)
        self.MarkPayoutPaid = Unary(stub.MarkPayoutPaid, session)
        self.MarkPayoutFailed = Unary(stub.MarkPayoutFailed, session)
        self.GetPayout = Unary(stub.GetPayout, session)
        self.CloseDay = Unary(stub.CloseDay, session)
        self.GetDayStatement = Unary(stub.GetDayStatement, session)
        self.GetAccountStatement = Unary(stub.GetAccountStatement, session)


class Report(_Service):
    """ReportService: every method, as in the module docstring."""

    def __init__(self, stub: report_pb2_grpc.ReportServiceStub, session: Session) -> None:
        super().__init__(stub, session)
        self.GetBalance = Unary(stub.GetBalance, session)
        self.ListBalances = Unary(stub.ListBalances, session)
        self.GetTeamMember = Unary(stub.GetTeamMember, session)
        self.GetUpline = Unary(stub.GetUpline, session)
        self.ListSubtree = Unary(stub.ListSubtree, session)
        self.GetTeamStats = Unary(stub.GetTeamStats, session)
        self.GetProjectionStatus = Unary(stub.GetProjectionStatus, session)

    def balances(self, account: str) -> list[Balance]:
        """``account``'s balances (one per currency) in the currency's unit, including
        every write this client made (read-your-writes)."""
        answer = self.GetBalance(report_pb2.GetBalanceRequest(account=account))
        return [Balance.of(b) for b in answer.balances]


class Audit(_Service):
    """AuditService: every method, as in the module docstring."""

    def __init__(self, stub: audit_pb2_grpc.AuditServiceStub, session: Session) -> None:
        super().__init__(stub, session)
        self.StreamEvents = partial(stub.StreamEvents, metadata=session.metadata)
        self.GetSignedHead = Unary(stub.GetSignedHead, session)
        self.ListSignedHeads = Unary(stub.ListSignedHeads, session)
        self.GetInclusionProof = Unary(stub.GetInclusionProof, session)
        self.GetConsistencyProof = Unary(stub.GetConsistencyProof, session)
        self.GetPublicKeys = Unary(stub.GetPublicKeys, session)
