"""One batch of the log applied to the read models: each event routed, by its aggregate and
class, to the writers of the balances, the team, reconciliation and the statements, over
the one cursor of the batch's transaction (see runner.py for how batches follow the log).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from eventsourcing.domain import DomainEvent
from eventsourcing.utils import get_topic
from ledger.projections.balances import BalanceWriter
from ledger.projections.clock import Calendar, micros
from ledger.projections.db import Cursor, append_rows
from ledger.projections.memory import Memory
from ledger.projections.reconciliation import ReconciliationWriter
from ledger.projections.statements import day_closed
from ledger.projections.team import TeamWriter

from ledger.domain import reconciliation as rail
from ledger.domain.order import Order, order_name
from ledger.domain.payout import REQUESTED, Payout
from ledger.domain.periods import PeriodBook
from ledger.domain.rail_bills import BreakBook, RailBill
from ledger.domain.team import Reseller


def event_topics(*aggregates: type) -> list[str]:
    """Every event class the aggregates define, as the log names it."""
    return [get_topic(v) for cls in aggregates for v in vars(cls).values()
            if isinstance(v, type) and issubclass(v, DomainEvent)]


# The events the read models are made of. Only these are read from the log: the rest
# (idempotency records, customer bindings, plan books…) were two in five log entries, read,
# transferred and passed over.
PROJECTED_TOPICS = event_topics(Order, Payout, Reseller, PeriodBook, RailBill, BreakBook)
ORDER, PAYOUT, RESELLER = Order.__qualname__, Payout.__qualname__, Reseller.__qualname__
PERIOD_BOOK = PeriodBook.__qualname__
RAIL_BILL, BREAK_BOOK = RailBill.__qualname__, BreakBook.__qualname__
# A payout's state as the rail would show it, after each of its steps.
RAIL_STATES = {"Paid": rail.SUCCESS, "Failed": rail.FAILED}


def qualname(cls: type) -> str:
    return cls.__qualname__

# What moved the money, as movements and statements name it.
PAYMENT = "payment"
REFUND = "refund"
SETTLEMENT = "settlement"
PAYOUT_STATUS = {"Approved": "approved", "Rejected": "rejected", "Paid": "paid",
                 "Failed": "failed"}
ENROLLED = qualname(Reseller.Enrolled)
PLACED, PAID = qualname(Order.Placed), qualname(Order.Paid)
MOVES_MONEY = frozenset(map(qualname, (Order.Paid, Order.Refunded, Order.Settled)))


class Batch:
    """What one transaction applies: the balance and team writers over one cursor."""

    def __init__(self, cur: Cursor, calendar: Calendar, memory: Memory | None = None) -> None:
        memory = memory or Memory()
        self.cur = cur
        self.balances = BalanceWriter(calendar, memory.balances)
        self.team = TeamWriter(cur, calendar, memory)
        self.recon = ReconciliationWriter(cur)
        self.calendar = calendar
        self._owners = memory.owners
        self._new_owners: list[tuple[str, str, str]] = []

    def prefetch(self, events: Sequence[tuple[Any, str, int]]) -> None:
        """Reads what the batch's events will look up, a few queries for all of them: the
        uplines of the sponsors its new members enrol under; for the orders placed and paid
        in it, their sellers (and the sellers' uplines where a payment counts for the tree
        as it stands) and when each seller was first paid in the month."""
        uplines: dict[str, dict[str, None]] = defaultdict(dict)
        sellers: dict[str, dict[str, None]] = defaultdict(dict)
        starts: dict[str, dict[tuple[str, str], None]] = defaultdict(dict)
        placed: dict[Any, tuple[str, str]] = {}
        for event, name, _ in events:
            if name == ENROLLED and event.sponsor_id:
                uplines[event.platform_id][event.sponsor_id] = None
            elif name == PLACED and event.seller_id:
                placed[event.originator_id] = (event.platform_id, event.seller_id)
            elif name == PAID and event.originator_id in placed:
                platform, seller = placed[event.originator_id]
                backdated = getattr(event, "backdated", False)
                (sellers if backdated else uplines)[platform][seller] = None
                starts[platform][(seller, self.calendar.month(event.paid_at))] = None
        tree = self.team.tree
        for platform, ids in uplines.items():
            tree.prefetch_uplines(platform, ids)
        for platform, ids in sellers.items():
            tree.prefetch_uplines(platform, ids, levels=1)
        for platform, keys in starts.items():
            self.team.prefetch_starts(platform, keys)

    def apply(self, event: Any, name: str, position: int) -> None:
        """``name`` is the event class's qualified name (``Order.Paid``), from its topic."""
        uid = str(event.originator_id)
        kind = name.partition(".")[0]
        if kind == ORDER:
            self._order(uid, name, event, position)
        elif kind == PAYOUT:
            self._payout(uid, name, event, position)
        elif kind == RESELLER:
            self._reseller(uid, name, event, position)
        elif kind == PERIOD_BOOK:
            self._period_book(uid, name, event)
        elif kind == RAIL_BILL:
            self.recon.bill_imported(event.platform_id, event.digest, event.day, event.kind,
                                     event.lines, position)
        elif kind == BREAK_BOOK:
            self._break_book(uid, name, event)

    def _order(self, uid: str, name: str, event: Any, position: int) -> None:
        team = self.team
        if name == qualname(Order.Placed):
            team.placed(uid, event.platform_id, event.order_id, event.storefront_id,
                        event.seller_id, event.currency)
            return
        order = team.order(uid)
        platform = order.platform
        ref = ("order:" + order_name(event.originator_id, platform, order.storefront,
                                     order.order_id) if name in MOVES_MONEY else "")
        if name == qualname(Order.Paid):
            self.balances.post(platform, event.postings, position, micros(event.paid_at),
                               PAYMENT, ref)
            total = -sum(p.amount for p in event.postings if p.bucket == "clearing")
            if event.postings:
                team.paid(uid, event.postings[0].currency, total, event.paid_at, position,
                          backdated=getattr(event, "backdated", False))
            team.order_life(uid, freeze_days=event.freeze_days)
            if event.postings:
                self.recon.recorded(platform, rail.LedgerRecord(
                    self.calendar.day(micros(event.paid_at)), rail.PAYMENT, event.payment_id,
                    total, event.postings[0].currency, rail.SUCCESS), "payment")
        elif name == qualname(Order.Refunded):
            refund = event.refund
            self.balances.post(platform, refund.postings, position, micros(refund.refunded_at),
                               REFUND, f"{ref}/refund:{refund.refund_id}")
            if refund.postings:
                team.refunded(uid, refund.postings[0].currency, refund.amount,
                              refund.refunded_at, position)
                self.recon.recorded(platform, rail.LedgerRecord(
                    self.calendar.day(micros(refund.refunded_at)), rail.REFUND,
                    refund.refund_id, refund.amount, refund.postings[0].currency,
                    rail.SUCCESS), "refund")
        elif name == qualname(Order.Completed):
            team.completed(uid, event.completed_at)
        elif name == qualname(Order.Settled):
            self.balances.post(platform, event.postings, position, micros(event.settled_at),
                               SETTLEMENT, ref)
            team.order_life(uid, settled=1)
        elif name == qualname(Order.AfterSaleOpened):
            team.order_life(uid, open_cases=1)
        elif name == qualname(Order.AfterSaleClosed):
            team.order_life(uid, open_cases=-1)

    def _payout(self, uid: str, name: str, event: Any, position: int) -> None:
        if name == qualname(Payout.Requested):
            self._own(uid, event.platform_id, event.payout_id)
            tax = getattr(event, "tax", 0)
            self.cur.execute(
                "INSERT INTO proj_payouts (payout_id, platform, account, currency, amount, "
                "status, requested_by, requested_at, updated_at, reference, reason, tax) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, '', '', %s)",
                (event.payout_id, event.platform_id, event.account, event.currency,
                 event.amount, REQUESTED, event.requested_by, micros(event.requested_at),
                 micros(event.requested_at), tax))
            self._withheld(event.platform_id, event.payout_id, event.amount, tax,
                           micros(event.requested_at), position)
            self.balances.post(event.platform_id, event.postings, position,
                               micros(event.requested_at), "payout_requested",
                               f"payout:{event.payout_id}")
            return
        platform, payout_id = self._owner(uid)
        status = PAYOUT_STATUS[name.partition(".")[2]]
        self.cur.execute(
            "UPDATE proj_payouts SET status = %s, updated_at = %s, "
            "reference = %s, reason = %s WHERE platform = %s AND payout_id = %s",
            (status, micros(event.at), getattr(event, "reference", ""),
             getattr(event, "reason", ""), platform, payout_id))
        postings = getattr(event, "postings", ())
        if postings:
            self.balances.post(platform, postings, position, micros(event.at),
                               f"payout_{status}", f"payout:{payout_id}")
        self._sent_to_rail(platform, payout_id, name.partition(".")[2], event)
        if status in ("rejected", "failed"):
            self.cur.execute("SELECT amount, tax FROM proj_payouts WHERE platform = %s AND "
                             "payout_id = %s", (platform, payout_id))
            gross, tax = self.cur.fetchone()
            self._withheld(platform, payout_id, -int(gross), -int(tax), micros(event.at),
                           position)

    def _sent_to_rail(self, platform: str, payout_id: str, step: str, event: Any) -> None:
        """An approved payout is sent to the rail (dated that day, pending until paid or
        failed): what the transfer bill is matched against."""
        if step == "Approved":
            # The rail is sent the net: the tax withheld stays with the platform.
            self.cur.execute("SELECT amount - tax, currency FROM proj_payouts WHERE "
                             "platform = %s AND payout_id = %s", (platform, payout_id))
            amount, currency = self.cur.fetchone()
            self.recon.recorded(platform, rail.LedgerRecord(
                self.calendar.day(micros(event.at)), rail.PAYOUT, payout_id, int(amount),
                currency, rail.PENDING), "payout_approved")
        elif step in RAIL_STATES:
            self.recon.payout_state(platform, payout_id, RAIL_STATES[step],
                                    f"payout_{step.lower()}")

    def _withheld(self, platform: str, payout_id: str, gross: int, tax: int, at: int,
                  position: int) -> None:
        """A payout's gross and tax for the tax reports: when requested, and taken back
        when it fails or is rejected (in the month and quarter that is recorded in)."""
        self.cur.execute(
            "INSERT INTO proj_withholdings (platform, account, currency, payout_id, gross, "
            "tax, at, position) SELECT platform, account, currency, payout_id, %s, %s, %s, %s "
            "FROM proj_payouts WHERE platform = %s AND payout_id = %s",
            (gross, tax, at, position, platform, payout_id))

    def _reseller(self, uid: str, name: str, event: Any, position: int) -> None:
        tree = self.team.tree
        if name == ENROLLED:
            self._own(uid, event.platform_id, event.reseller_id)
            tree.enrolled(event.platform_id, event.reseller_id, event.sponsor_id,
                          event.enrolled_at, position)
            return
        platform, reseller_id = self._owner(uid)
        if name == qualname(Reseller.Moved):
            tree.moved(platform, reseller_id, event.to_sponsor_id, event.moved_at, position)
        elif name == qualname(Reseller.RankSet):
            tree.rank_set(platform, reseller_id, event.rank)
        elif name == qualname(Reseller.TeamTargetSet):
            self.team.target_set(platform, reseller_id, event.month, event.currency, event.amount,
                            event.set_at, position)

    def _period_book(self, uid: str, name: str, event: Any) -> None:
        """A closed day, once the movements before it in the log are written (its closing
        balances are written with them: projections/day_balances.py)."""
        if name == qualname(PeriodBook.Opened):
            self._own(uid, event.platform_id, "")
        elif name == qualname(PeriodBook.DayClosed):
            self.balances.flush(self.cur)
            day_closed(self.cur, self._owner(uid)[0], event.statement.day)

    def _break_book(self, uid: str, name: str, event: Any) -> None:
        if name == qualname(BreakBook.Opened):
            self._own(uid, event.platform_id, event.day)
        elif name == qualname(BreakBook.Acknowledged):
            platform, day = self._owner(uid)
            self.recon.acknowledged(platform, day, event.break_id, event.reason, event.by)

    def _own(self, uid: str, platform: str, key: str) -> None:
        """Later events of an aggregate do not repeat its platform and id: remember them."""
        self._new_owners.append((uid, platform, key))
        self._owners[uid] = (platform, key)

    def _owner(self, uid: str) -> tuple[str, str]:
        if uid not in self._owners:
            self.cur.execute("SELECT platform, key FROM proj_owners WHERE uid = %s", (uid,))
            row = self.cur.fetchone()
            assert row is not None, f"{uid} was never created"
            self._owners[uid] = (row[0], row[1])
        return self._owners[uid]

    def flush(self) -> None:
        # Written with the batch, not one INSERT each: a statement per enrolment or order
        # placed was most of what bringing a large tree in cost the read models.
        append_rows(self.cur, "proj_owners", ("uid", "platform", "key"), self._new_owners)
        self._new_owners.clear()
        self.balances.flush(self.cur)
        self.team.flush()
        self.recon.flush()
