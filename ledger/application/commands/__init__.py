"""The commands the ledger accepts, as plain data, with the checks on their shape.

A command's ``violations()`` checks only what can be seen in the request itself (lengths,
signs, codes); rules that depend on what the ledger already holds live in the domain.

One module per part of the business (orders, team, plans, payouts, closing), over the shared
checks and the base class; callers name them all through this package
(``from ledger.application import commands as c``).
"""

from __future__ import annotations

from ledger.application.commands.base import (
    Command,
    plain,
)
from ledger.application.commands.checks import (
    IN_CALENDAR,
    MAX_ID_LENGTH,
    MAX_LINES,
    MAX_QUANTITY,
    MAX_TEXT_LENGTH,
    MONTH,
    Caller,
    Violations,
    check_amount,
    check_day,
    check_id,
    check_month,
    check_payee_account,
    check_quarter,
    check_text,
)
from ledger.application.commands.closing import (
    AcknowledgeBreak,
    BeginClosingDay,
    CloseDay,
    CloseQuarter,
    ImportBill,
)
from ledger.application.commands.orders import (
    CancelOrder,
    CloseAfterSale,
    CompleteOrder,
    ImportOrder,
    NewLine,
    OpenAfterSale,
    PayOrder,
    PlaceOrder,
    RefundLineRequest,
    RefundOrder,
)
from ledger.application.commands.payouts import (
    ApprovePayout,
    MarkPayoutFailed,
    MarkPayoutPaid,
    PayoutStep,
    RecordPayee,
    RejectPayout,
    RequestPayout,
    RunSettlement,
)
from ledger.application.commands.plans import (
    PublishPlan,
    PublishTaxTable,
)
from ledger.application.commands.team import (
    BindCustomer,
    EnrollReseller,
    ImportReseller,
    MoveReseller,
    RebindCustomer,
    SetRank,
    SetTeamTarget,
)

__all__ = [
    "IN_CALENDAR",
    "MAX_ID_LENGTH",
    "MAX_LINES",
    "MAX_QUANTITY",
    "MAX_TEXT_LENGTH",
    "MONTH",
    "AcknowledgeBreak",
    "ApprovePayout",
    "BeginClosingDay",
    "BindCustomer",
    "Caller",
    "CancelOrder",
    "CloseAfterSale",
    "CloseDay",
    "CloseQuarter",
    "Command",
    "CompleteOrder",
    "EnrollReseller",
    "ImportBill",
    "ImportOrder",
    "ImportReseller",
    "MarkPayoutFailed",
    "MarkPayoutPaid",
    "MoveReseller",
    "NewLine",
    "OpenAfterSale",
    "PayOrder",
    "PayoutStep",
    "PlaceOrder",
    "PublishPlan",
    "PublishTaxTable",
    "RebindCustomer",
    "RecordPayee",
    "RefundLineRequest",
    "RefundOrder",
    "RejectPayout",
    "RequestPayout",
    "RunSettlement",
    "SetRank",
    "SetTeamTarget",
    "Violations",
    "check_amount",
    "check_day",
    "check_id",
    "check_month",
    "check_payee_account",
    "check_quarter",
    "check_text",
    "plain",
]
