"""Commands as the tests ask them: each decided (order_decisions.py, periods.py…), then its
events applied (decisions.evolve), as the handlers do, on an aggregate of the test's own."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ledger.domain.decisions import evolve_all
from ledger.domain.money import Posting
from ledger.domain.order import Order
from ledger.domain.order_decisions import (
    Complete,
    Pay,
    Refund,
    Refunded,
    Settle,
    decide_complete,
    decide_pay,
    decide_refund,
    decide_settle,
    settled_postings,
)
from ledger.domain.periods import (
    BeginClosing,
    Close,
    DayStatement,
    PeriodBook,
    decide_begin_closing,
    decide_close,
)
from ledger.domain.plan import CommissionPlan
from ledger.domain.refunds import RefundLine, RefundRecord
from ledger.domain.split import UplineMember
from ledger.domain.tax_table import (
    PublishTable,
    TablePublished,
    TaxBook,
    TaxTable,
    decide_publish_table,
)
from ledger.domain.withholding import (
    ReleaseTax,
    TaxWithheld,
    TaxYear,
    Withhold,
    Withholding,
    decide_release_tax,
    decide_withhold,
)


def pay(order: Order, *, payment_id: str, amount: int, plan: CommissionPlan,
        chain: Sequence[UplineMember], self_purchase: bool, at: datetime) -> Order:
    return evolve_all(order, decide_pay(order, Pay(payment_id, amount, plan, tuple(chain),
                                                   self_purchase, at)))


def complete(order: Order, *, at: datetime) -> Order:
    return evolve_all(order, decide_complete(order, Complete(at)))


def settle(order: Order, *, at: datetime) -> tuple[Posting, ...]:
    decided = decide_settle(order, Settle(at))
    evolve_all(order, decided)
    return settled_postings(decided)


def refund(order: Order, *, refund_id: str, lines: Sequence[RefundLine], reason: str,
           at: datetime) -> RefundRecord:
    [refunded] = decide_refund(order, Refund(refund_id, tuple(lines), reason, at))
    evolve_all(order, [refunded])
    assert isinstance(refunded, Refunded)
    return refunded.refund


# --- the other aggregates' commands, the same way ---------------------------------------------


def withhold_in(year: TaxYear, table: TaxTable, *, payout_id: str, month: int, gross: int,
                at: datetime) -> Withholding:
    """The payout's tax, as the year records it."""
    [withheld] = decide_withhold(year, Withhold(table, payout_id, month, gross, at))
    evolve_all(year, [withheld])
    assert isinstance(withheld, TaxWithheld)
    return Withholding(withheld.gross, withheld.tax, withheld.cumulative_income,
                       withheld.months, withheld.cumulative_taxable, withheld.cumulative_tax,
                       withheld.withheld_before, withheld.table_version)


def release_in(year: TaxYear, *, payout_id: str, at: datetime) -> None:
    evolve_all(year, decide_release_tax(year, ReleaseTax(payout_id, at)))


def publish_in(book: TaxBook, table: TaxTable, *, now: datetime) -> TaxTable:
    [published] = decide_publish_table(book, PublishTable(table, now))
    evolve_all(book, [published])
    assert isinstance(published, TablePublished)
    return published.table


def begin_closing(book: PeriodBook, day: str, *, now: datetime) -> None:
    evolve_all(book, decide_begin_closing(book, BeginClosing(day, now)))


def close(book: PeriodBook, statement: DayStatement, *, now: datetime) -> None:
    evolve_all(book, decide_close(book, Close(statement, now)))
