"""The commands the ledger accepts, as plain data, with the checks on their shape.

A command's ``violations()`` checks only what can be seen in the request itself (lengths,
signs, codes); rules that depend on what the ledger already holds live in the domain.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from itertools import pairwise
from typing import Any, ClassVar

from ledger.domain.money import MAX_AMOUNT, is_currency
from ledger.domain.order import OrderKey
from ledger.domain.payee import BUSINESS, PAYEE_KINDS, SealedIdentity
from ledger.domain.periods import FIRST_YEAR, LAST_YEAR, DayStatement
from ledger.domain.plan import RateOverride
from ledger.domain.quarters import QuarterReport, parse_quarter
from ledger.domain.reconciliation import BILL_KINDS, BillLine
from ledger.domain.tax_table import TaxBracket

MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 1000
MAX_LINES = 500
MAX_QUANTITY = 1_000_000

Violations = list[tuple[str, str]]


@dataclass(frozen=True)
class Caller:
    """Who is asking: the tenant (platform), the authenticated principal within it, and the
    role of its key (storefront, admin, finance)."""

    platform_id: str
    principal: str
    role: str = ""


def check_id(v: Violations, field: str, value: str, *, required: bool = True) -> None:
    if not value:
        if required:
            v.append((field, "is required"))
        return
    if len(value) > MAX_ID_LENGTH:
        v.append((field, f"must be at most {MAX_ID_LENGTH} characters"))
    if not value.isprintable() or value != value.strip():
        v.append((field, "must be printable, without surrounding spaces"))


def check_text(v: Violations, field: str, value: str) -> None:
    if len(value) > MAX_TEXT_LENGTH:
        v.append((field, f"must be at most {MAX_TEXT_LENGTH} characters"))


IN_CALENDAR = f"must be in the years {FIRST_YEAR} to {LAST_YEAR}"


def check_day(v: Violations, field: str, value: str) -> None:
    """A calendar day written as YYYY-MM-DD."""
    try:
        if len(value) != 10:
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        v.append((field, "must be a calendar day as YYYY-MM-DD"))
        return
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        v.append((field, IN_CALENDAR))


def check_month(v: Violations, field: str, value: str) -> None:
    """A calendar month written as YYYY-MM."""
    if not MONTH.match(value):
        v.append((field, "must be a calendar month as YYYY-MM"))
    elif not FIRST_YEAR <= int(value[:4]) <= LAST_YEAR:
        v.append((field, IN_CALENDAR))


def check_amount(v: Violations, field: str, value: int, *, positive: bool = False) -> None:
    low = 1 if positive else 0
    if not low <= value <= MAX_AMOUNT:
        v.append((field, f"must be {low} to {MAX_AMOUNT} minor units"))


_FIELDS: dict[type, tuple[str, ...]] = {}
_SCALARS = (str, int, bool, float, type(None))


def plain(value: Any) -> Any:
    """``dataclasses.asdict`` as JSON sees it (tuples as lists), without asdict's deep copy
    of every value: fingerprints hash this, and asdict was a sixteenth of a bulk import."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is tuple or kind is list:
        return [plain(v) for v in value]
    if kind is dict:
        return {k: plain(v) for k, v in value.items()}
    names = _FIELDS.get(kind)
    if names is None and dataclasses.is_dataclass(kind):
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(kind))
    if names is None:
        return value
    return {name: plain(getattr(value, name)) for name in names}


@dataclass(frozen=True)
class Command:
    idempotency_key: str

    # Fields the ledger fills in from its own state before running the command (not what the
    # client asked): left out of the fingerprint, so a retry still matches.
    derived: ClassVar[tuple[str, ...]] = ()
    # Fields added after commands were first recorded, left out of the fingerprint while
    # unset: a retry of a write recorded before they existed still matches.
    added_later: ClassVar[tuple[str, ...]] = ()

    def fingerprint(self) -> str:
        """Identifies the request apart from its idempotency key."""
        skip = {"idempotency_key", *self.derived}
        body = {k: v for k, v in plain(self).items()
                if k not in skip and not (v is None and k in self.added_later)}
        text = json.dumps([type(self).__name__, body], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def violations(self) -> Violations:
        v: Violations = []
        check_id(v, "idempotency_key", self.idempotency_key)
        return v


@dataclass(frozen=True)
class NewLine:
    sku: str
    category: str
    quantity: int
    unit_sale_price: int
    unit_supply_price: int
    supplier_id: str


@dataclass(frozen=True)
class PlaceOrder(Command):
    order_id: str
    customer_id: str
    reseller_id: str
    currency: str
    lines: tuple[NewLine, ...]

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "order_id", self.order_id)
        check_id(v, "customer_id", self.customer_id)
        check_id(v, "reseller_id", self.reseller_id, required=False)
        if not is_currency(self.currency):
            v.append(("currency", "must be an ISO 4217 code such as CNY"))
        if not 1 <= len(self.lines) <= MAX_LINES:
            v.append(("lines", f"an order has 1 to {MAX_LINES} lines"))
        for i, line in enumerate(self.lines):
            at = f"lines[{i}]"
            check_id(v, f"{at}.sku", line.sku)
            check_id(v, f"{at}.category", line.category, required=False)
            check_id(v, f"{at}.supplier_id", line.supplier_id)
            if not 1 <= line.quantity <= MAX_QUANTITY:
                v.append((f"{at}.quantity", f"must be 1 to {MAX_QUANTITY}"))
            check_amount(v, f"{at}.unit_sale_price", line.unit_sale_price)
            check_amount(v, f"{at}.unit_supply_price", line.unit_supply_price)
            amount = line.quantity * line.unit_sale_price
            if 0 < line.quantity <= MAX_QUANTITY and amount > MAX_AMOUNT:
                v.append((at, f"a line's amount must be at most {MAX_AMOUNT} minor units"))
        return v


@dataclass(frozen=True)
class ImportOrder(PlaceOrder):
    """A past order recorded in one step (bulk import): placed, paid in full with
    ``payment_id`` and, if ``completed``, completed. One idempotency key covers all three."""

    payment_id: str = ""
    completed: bool = False
    # For a backfill: when it happened. None: placed now, paid when placed, completed when
    # paid. Checked against the clock (none in the future) by the handler.
    placed_at: datetime | None = None
    paid_at: datetime | None = None
    completed_at: datetime | None = None
    added_later: ClassVar[tuple[str, ...]] = ("placed_at", "paid_at", "completed_at")

    def dated(self) -> list[tuple[str, datetime]]:
        """The steps given a time, in the order they happen."""
        return [(name, at) for name, at in (("placed_at", self.placed_at),
                                            ("paid_at", self.paid_at),
                                            ("completed_at", self.completed_at))
                if at is not None]

    def times(self, now: datetime) -> tuple[datetime, datetime, datetime]:
        """(placed, paid, completed): an unset placing is taken from the payment (else now),
        an unset payment from the placing, an unset completion from the payment. With the
        given times in order (``violations``), the three are in order too."""
        placed = self.placed_at or self.paid_at or now
        paid = self.paid_at or placed
        return placed, paid, self.completed_at or paid

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "payment_id", self.payment_id)
        if self.completed_at is not None and not self.completed:
            v.append(("completed_at", "is only for a completed order"))
        if self.completed_at is not None and self.paid_at is None and self.placed_at is None:
            # Else the payment would be dated now, after the completion: the freeze window
            # would run from before the money came in.
            v.append(("completed_at", "needs paid_at (or placed_at): a backfilled completion "
                                      "dates its payment too"))
        v.extend((name, IN_CALENDAR) for name, at in self.dated()
                 if not FIRST_YEAR <= at.year <= LAST_YEAR)
        for (before, earlier), (name, later) in pairwise(self.dated()):
            if later < earlier:
                v.append((name, f"must not be before {before}"))
        return v


@dataclass(frozen=True)
class PayOrder(Command):
    order_id: str
    payment_id: str
    amount: int

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "order_id", self.order_id)
        check_id(v, "payment_id", self.payment_id)
        check_amount(v, "amount", self.amount)
        return v


@dataclass(frozen=True)
class CompleteOrder(Command):
    order_id: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "order_id", self.order_id)
        return v


@dataclass(frozen=True)
class CancelOrder(Command):
    order_id: str
    reason: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "order_id", self.order_id)
        check_text(v, "reason", self.reason)
        return v


@dataclass(frozen=True)
class RefundLineRequest:
    line_no: int
    amount: int


@dataclass(frozen=True)
class RefundOrder(Command):
    order_id: str
    refund_id: str
    lines: tuple[RefundLineRequest, ...]
    reason: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "order_id", self.order_id)
        check_id(v, "refund_id", self.refund_id)
        check_text(v, "reason", self.reason)
        if not 1 <= len(self.lines) <= MAX_LINES:
            v.append(("lines", f"a refund names 1 to {MAX_LINES} lines"))
        for i, line in enumerate(self.lines):
            if line.line_no < 1:
                v.append((f"lines[{i}].line_no", "must be 1 or more"))
            check_amount(v, f"lines[{i}].amount", line.amount, positive=True)
        return v


@dataclass(frozen=True)
class OpenAfterSale(Command):
    order_id: str
    case_id: str
    line_no: int
    reason: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "order_id", self.order_id)
        check_id(v, "case_id", self.case_id)
        if self.line_no < 1:
            v.append(("line_no", "must be 1 or more"))
        check_text(v, "reason", self.reason)
        return v


@dataclass(frozen=True)
class CloseAfterSale(Command):
    order_id: str
    case_id: str
    resolution: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "order_id", self.order_id)
        check_id(v, "case_id", self.case_id)
        check_text(v, "resolution", self.resolution)
        return v


@dataclass(frozen=True)
class EnrollReseller(Command):
    reseller_id: str
    sponsor_id: str
    customer_id: str
    without_sponsor: bool
    # For a platform bringing its tree: when the reseller joined. None: now. Checked against
    # the clock (not in the future) and the sponsor's enrolment by the domain.
    enrolled_at: datetime | None = None
    added_later: ClassVar[tuple[str, ...]] = ("enrolled_at",)

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "reseller_id", self.reseller_id)
        check_id(v, "sponsor_id", self.sponsor_id, required=False)
        check_id(v, "customer_id", self.customer_id, required=False)
        if self.sponsor_id and self.without_sponsor:
            v.append(("without_sponsor", "cannot be set together with sponsor_id"))
        if self.sponsor_id and self.sponsor_id == self.reseller_id:
            v.append(("sponsor_id", "a reseller cannot sponsor itself"))
        if self.enrolled_at is not None and not FIRST_YEAR <= self.enrolled_at.year <= LAST_YEAR:
            v.append(("enrolled_at", IN_CALENDAR))
        return v


@dataclass(frozen=True)
class ImportReseller(EnrollReseller):
    """A member of a tree a platform brings with it (bulk import): enrolled under the sponsor
    named (none when empty: the tree is given whole, no binding is looked up), at the date
    given, holding ``rank`` from then on."""

    rank: str = ""

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "rank", self.rank, required=False)
        return v


@dataclass(frozen=True)
class BindCustomer(Command):
    customer_id: str
    reseller_id: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "customer_id", self.customer_id)
        check_id(v, "reseller_id", self.reseller_id)
        return v


@dataclass(frozen=True)
class PublishPlan(Command):
    effective_from: datetime | None
    level_rates_bps: tuple[int, ...]
    overrides: tuple[RateOverride, ...]
    freeze_days: int
    min_payout: int
    exclude_self_purchase: bool


@dataclass(frozen=True)
class MoveReseller(Command):
    reseller_id: str
    new_sponsor_id: str
    reason: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "reseller_id", self.reseller_id)
        check_id(v, "new_sponsor_id", self.new_sponsor_id, required=False)
        if not self.reason.strip():
            v.append(("reason", "moving a reseller needs a reason"))
        check_text(v, "reason", self.reason)
        return v


@dataclass(frozen=True)
class SetRank(Command):
    reseller_id: str
    rank: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "reseller_id", self.reseller_id)
        check_id(v, "rank", self.rank, required=False)
        return v


@dataclass(frozen=True)
class RebindCustomer(Command):
    customer_id: str
    reseller_id: str
    reason: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "customer_id", self.customer_id)
        check_id(v, "reseller_id", self.reseller_id)
        if not self.reason.strip():
            v.append(("reason", "rebinding a customer needs a reason"))
        check_text(v, "reason", self.reason)
        return v


MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class SetTeamTarget(Command):
    reseller_id: str
    month: str
    currency: str
    amount: int

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "reseller_id", self.reseller_id)
        check_month(v, "month", self.month)
        if not is_currency(self.currency):
            v.append(("currency", "must be an ISO 4217 code such as CNY"))
        check_amount(v, "amount", self.amount)
        return v


@dataclass(frozen=True)
class RunSettlement(Command):
    """Settles the orders that are due. ``orders`` are the candidates the read models found
    (each named with its storefront: two storefronts may number orders alike); each is
    checked again on its own events before anything moves."""

    orders: tuple[OrderKey, ...] = ()
    derived: ClassVar[tuple[str, ...]] = ("orders",)


@dataclass(frozen=True)
class RequestPayout(Command):
    account: str
    currency: str
    amount: int

    def violations(self) -> Violations:
        v = super().violations()
        check_payee_account(v, "account", self.account)
        if not is_currency(self.currency):
            v.append(("currency", "must be an ISO 4217 code such as CNY"))
        check_amount(v, "amount", self.amount, positive=True)
        return v


@dataclass(frozen=True)
class PayoutStep(Command):
    payout_id: str

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "payout_id", self.payout_id)
        return v


@dataclass(frozen=True)
class ApprovePayout(PayoutStep):
    pass


@dataclass(frozen=True)
class RejectPayout(PayoutStep):
    reason: str = ""

    def violations(self) -> Violations:
        v = super().violations()
        if not self.reason.strip():
            v.append(("reason", "rejecting a payout needs a reason"))
        check_text(v, "reason", self.reason)
        return v


@dataclass(frozen=True)
class MarkPayoutPaid(PayoutStep):
    reference: str = ""

    def violations(self) -> Violations:
        v = super().violations()
        check_id(v, "reference", self.reference)
        return v


@dataclass(frozen=True)
class MarkPayoutFailed(PayoutStep):
    reason: str = ""

    def violations(self) -> Violations:
        v = super().violations()
        if not self.reason.strip():
            v.append(("reason", "a failed payout needs the rail's reason"))
        check_text(v, "reason", self.reason)
        return v


@dataclass(frozen=True)
class BeginClosingDay(Command):
    """CloseDay's first step: the day stops taking writes before its statement is drawn, so
    no write dated into it (a backfill) can commit between the drawing and the close.

    ``close_key`` is the CloseDay request's own key: the step checks it before shutting the
    day, since a key already taken by another request would refuse the second step and
    leave the day shut without its statement."""

    day: str
    close_key: str = ""
    derived: ClassVar[tuple[str, ...]] = ("close_key",)

    @classmethod
    def first_step_of(cls, close: CloseDay) -> BeginClosingDay:
        """Keyed after the CloseDay request's key, so that a retry repeats it (and the key
        reused for another day is refused before anything is written); hashed, since that
        key may already be as long as a key can be."""
        digest = hashlib.sha256(close.idempotency_key.encode()).hexdigest()
        return cls(f"{digest}:closing", close.day, close.idempotency_key)

    def second_step(self) -> CloseDay:
        """The request whose first step this is, as its key records it."""
        return CloseDay(self.close_key, self.day)

    def violations(self) -> Violations:
        v = super().violations()
        check_day(v, "day", self.day)
        return v


@dataclass(frozen=True)
class CloseDay(Command):
    """Closes a calendar day with its statement, computed from the read models once they
    had caught up with the whole log (see projections/statements.py)."""

    day: str
    statement: DayStatement | None = None
    derived: ClassVar[tuple[str, ...]] = ("statement",)

    def violations(self) -> Violations:
        v = super().violations()
        check_day(v, "day", self.day)
        return v


@dataclass(frozen=True)
class ImportBill(Command):
    """A rail's bill of ``day``, read by the API into ``lines``; ``digest`` (SHA-256 of the
    file) names it, so the lines are left out of the fingerprint."""

    day: str
    kind: str
    fmt: str
    digest: str
    lines: tuple[BillLine, ...] = ()
    derived: ClassVar[tuple[str, ...]] = ("lines",)

    def violations(self) -> Violations:
        v = super().violations()
        check_day(v, "day", self.day)
        if self.kind not in BILL_KINDS:
            v.append(("kind", f"must be one of {', '.join(BILL_KINDS)}"))
        return v


@dataclass(frozen=True)
class AcknowledgeBreak(Command):
    day: str
    break_id: str
    reason: str

    def violations(self) -> Violations:
        v = super().violations()
        check_day(v, "day", self.day)
        check_text(v, "break_id", self.break_id)
        if not self.break_id:
            v.append(("break_id", "is required"))
        if not self.reason.strip():
            v.append(("reason", "acknowledging a break needs a reason"))
        check_text(v, "reason", self.reason)
        return v


@dataclass(frozen=True)
class RecordPayee(Command):
    """Finance records a payee. The identity arrives sealed (ledger/application/
    identity_vault.py): neither the log nor the idempotency records ever hold it in clear."""

    account: str
    kind: str
    tax_id: str
    identity: SealedIdentity | None

    def violations(self) -> Violations:
        v = super().violations()
        check_payee_account(v, "account", self.account)
        if self.kind not in PAYEE_KINDS:
            v.append(("kind", "must be individual or business"))
        check_id(v, "tax_id", self.tax_id, required=self.kind == BUSINESS)
        if self.kind == BUSINESS and self.identity is not None:
            v.append(("identity", "a business is named by its tax id, not a person's identity"))
        return v


def check_payee_account(v: Violations, field: str, account: str) -> None:
    kind, _, owner = account.partition(":")
    if kind not in ("reseller", "supplier") or not owner:
        v.append((field, "must be reseller:<id> or supplier:<id>"))
    check_id(v, field, account)


@dataclass(frozen=True)
class PublishTaxTable(Command):
    effective_from: datetime | None
    brackets: tuple[TaxBracket, ...]
    income_ratio_bps: int
    monthly_deduction: int
    currency: str


@dataclass(frozen=True)
class CloseQuarter(Command):
    """Closes a quarter with its report, drawn from the read models once they had caught up
    with the whole log (see projections/tax.py)."""

    quarter: str
    report: QuarterReport | None = None
    derived: ClassVar[tuple[str, ...]] = ("report",)

    def violations(self) -> Violations:
        v = super().violations()
        check_quarter(v, "quarter", self.quarter)
        return v


def check_quarter(v: Violations, field: str, value: str) -> None:
    """A calendar quarter written as YYYYQn."""
    try:
        year, _ = parse_quarter(value)
    except ValueError:
        v.append((field, "must be a calendar quarter as YYYYQn, e.g. 2026Q1"))
        return
    if not FIRST_YEAR <= year <= LAST_YEAR:
        v.append((field, IN_CALENDAR))
