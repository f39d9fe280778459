"""The projection runner: follows the event log in order and keeps the read models current.

Each batch of events is applied in one transaction together with the position reached, so a
crash at any point neither skips nor applies an event twice: the next run starts after the
last committed position. The transaction first locks the position row, so several runners
(one per server, or `ledger project` processes) never apply the same event twice; whoever
holds the lock applies what is new, and the others find nothing left to do.

The log cannot show a later event before an earlier one: the PostgreSQL event store takes a
table lock for each insert (the eventsourcing library's default, kept on purpose) and SQLite
has one writer, so positions become visible in order and reading "everything after my
position" never jumps past an event that commits later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import structlog
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.utils import get_topic
from ledger.projections.balances import BalanceWriter
from ledger.projections.clock import Calendar, micros
from ledger.projections.db import (
    SCHEMA_VERSION,
    Cursor,
    Link,
    ProjectionDB,
    StoreUnavailable,
    append_rows,
)
from ledger.projections.decoding import event_reader
from ledger.projections.log_pages import LogPages
from ledger.projections.memory import DEFAULT_LIMIT, Memory
from ledger.projections.reconciliation import ReconciliationWriter
from ledger.projections.statements import day_closed
from ledger.projections.team import TeamWriter

from ledger.application.ledger_app import LedgerApplication
from ledger.domain import reconciliation as rail
from ledger.domain.order import Order, order_name
from ledger.domain.payout import REQUESTED, Payout
from ledger.domain.periods import PeriodBook
from ledger.domain.rail_bills import BreakBook, RailBill
from ledger.domain.team import Reseller
from ledger.outages import Outage

log = structlog.get_logger(__name__)

NAME = "read-models"
# What a store that went away raises: the read models' own link, or the event store's (the
# library's pool, through which the log is read).
UNAVAILABLE = (StoreUnavailable, OperationalError, InterfaceError)


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
DEFAULT_BATCH = 1000
MOVES_MONEY = frozenset(map(qualname, (Order.Paid, Order.Refunded, Order.Settled)))


class Batch:
    """What one transaction applies: the balance and team writers over one cursor."""

    def __init__(self, cur: Cursor, calendar: Calendar, memory: Memory | None = None) -> None:
        memory = memory or Memory()
        self.cur = cur
        self.balances = BalanceWriter(calendar)
        self.team = TeamWriter(cur, calendar, memory)
        self.recon = ReconciliationWriter(cur)
        self.calendar = calendar
        self._owners = memory.owners
        self._new_owners: list[tuple[str, str, str]] = []

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
        team = self.team
        if name == qualname(Reseller.Enrolled):
            self._own(uid, event.platform_id, event.reseller_id)
            team.enrolled(event.platform_id, event.reseller_id, event.sponsor_id,
                          event.enrolled_at, position)
            return
        platform, reseller_id = self._owner(uid)
        if name == qualname(Reseller.Moved):
            team.moved(platform, reseller_id, event.to_sponsor_id, event.moved_at, position)
        elif name == qualname(Reseller.RankSet):
            team.rank_set(platform, reseller_id, event.rank)
        elif name == qualname(Reseller.TeamTargetSet):
            team.target_set(platform, reseller_id, event.month, event.currency, event.amount,
                            event.set_at, position)

    def _period_book(self, uid: str, name: str, event: Any) -> None:
        """A closed day's closing balances, for the statements of the days after it; written
        once the movements before it in the log are (they are all it sums)."""
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


class ProjectionRunner:
    def __init__(
        self,
        app: LedgerApplication,
        database_url: str,
        *,
        calendar: Calendar | None = None,
        batch_size: int = DEFAULT_BATCH,
        memory_limit: int = DEFAULT_LIMIT,
    ) -> None:
        """``memory_limit``: entries the writers remember between batches
        (LEDGER_PROJECTION_CACHE)."""
        assert 1 <= batch_size <= 100_000
        self.app = app
        self.db = ProjectionDB(database_url)
        self.calendar = calendar or Calendar()
        self.batch_size = batch_size
        self.position = 0  # the last position this process saw committed
        self.applied = 0  # events this runner has applied (committed), for progress and tests
        self._read = event_reader(app.mapper)
        self._link = Link(self.db)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._advanced = threading.Condition()
        self._thread: threading.Thread | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._memory = Memory(limit=memory_limit)
        self._log = LogPages(app, PROJECTED_TOPICS)
        self._ahead: tuple[int, Future[tuple[Sequence[Any], int]]] | None = None
        self.outage = Outage("applying the log to the read models", logger=log,
                             operation="projection")

    # --- set-up ----------------------------------------------------------------------------

    def connection(self) -> Any:
        return self._link.connection()

    def setup(self, *, query_indexes: bool = True) -> None:
        """Creates the read models; rebuilds them if they were made by another schema version."""
        with self._link.connected() as conn:
            self.db.create(conn, query_indexes=query_indexes)
        with self._link.transaction() as cur:
            cur.execute("SELECT position, schema_version FROM proj_meta WHERE name = %s", (NAME,))
            row = cur.fetchone()
        if row is not None and int(row[1]) != SCHEMA_VERSION:
            log.warning("read models are from another schema version: rebuilding",
                        found=int(row[1]), wanted=SCHEMA_VERSION)
            self.reset()
            return
        if row is None:
            with self._link.transaction() as cur:
                cur.execute("INSERT INTO proj_meta (name, position, schema_version, updated_at) "
                            "VALUES (%s, 0, %s, %s) ON CONFLICT (name) DO NOTHING",
                            (NAME, SCHEMA_VERSION, int(time.time() * 1e6)))
        self.position = self.processed_position()

    def reset(self, *, bulk: bool = False) -> None:
        """Drops every read model and starts again from the beginning of the log.

        ``bulk``: the caller is about to apply the whole log (a rebuild), so the indexes only
        the queries use are left out until ``finish_bulk``."""
        with self._link.connected() as conn:
            self.db.drop(conn)
        self.position = 0
        self._memory.forget()
        self.setup(query_indexes=not bulk)

    def finish_bulk(self) -> None:
        """After a bulk rebuild: the queries' indexes, each built once from the whole table,
        and the planner's statistics."""
        with self._link.connected() as conn:
            self.db.create_indexes(conn)
            self.db.analyze(conn)

    # --- running ---------------------------------------------------------------------------

    def run_once(self) -> int:
        """Applies the next batch of events; returns how many log positions it covered."""
        with self._link.transaction() as cur:
            lock = " FOR UPDATE" if self.db.is_postgres else ""
            cur.execute(f"SELECT position FROM proj_meta WHERE name = %s{lock}", (NAME,))
            row = cur.fetchone()
            assert row is not None, "setup() first"
            start = position = int(row[0])
            notifications, reached = self._page(position)
            if reached == position + self.batch_size:
                self._read_ahead(reached)
            if reached > position:
                self._memory.begin(position)  # forgotten if another runner applied some
                batch, read = Batch(cur, self.calendar, self._memory), self._read
                for notification in notifications:
                    assert notification.id > position, "the log went backwards"
                    batch.apply(read(notification), notification.topic.partition(":")[2],
                                notification.id)
                    position = notification.id
                position = reached
                batch.flush()
                cur.execute("UPDATE proj_meta SET position = %s, updated_at = %s WHERE name = %s",
                            (position, int(time.time() * 1e6), NAME))
        if position > start:
            self._memory.committed(position)
            self.applied += len(notifications)
        self._advance(position)
        return position - start

    def _page(self, position: int) -> tuple[Sequence[Any], int]:
        """The projected events after ``position``, at most ``batch_size`` positions on, and
        the position they take the read models to: the end of that range, or the log's head
        as it was before the read if nearer, since every position up to a visible one is
        settled (see above).

        A page read ahead is used only if its range was whole: a shorter one was cut at a
        head read before later writes, and an empty one would make ``catch_up`` stop short
        of the log's head."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == position:
            page, reached = ahead[1].result()
            if reached == position + self.batch_size:
                return page, reached
        return self._select(position, self.app.log_position())

    def _select(self, position: int, head: int) -> tuple[Sequence[Any], int]:
        last = min(head, position + self.batch_size)
        return self._log.read(position + 1, last), max(last, position)

    def _read_ahead(self, position: int) -> None:
        """Reads the page after a whole one while this one is applied: the database works on
        the next page while Python works on this one. The page is a correct view of the log
        whenever it is read, since positions become visible in order (see above); a page
        read for a position that is not where the next batch starts is dropped."""
        if self._reader is None:
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="projections-read")
        self._ahead = (position, self._reader.submit(
            lambda: self._select(position, self.app.log_position())))

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Runs batches until the log has nothing new; returns how many log positions it
        covered (``applied`` counts the events among them that the read models use)."""
        total = 0
        while True:
            done = self.run_once()
            if not done:
                return total
            total += done
            if progress:
                progress(total)

    def _advance(self, position: int) -> None:
        with self._advanced:
            self.position = max(self.position, position)
            self._advanced.notify_all()

    def processed_position(self) -> int:
        with self._link.transaction(write=False) as cur:
            cur.execute("SELECT position FROM proj_meta WHERE name = %s", (NAME,))
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def log_head(self) -> int:
        return self.app.log_position()

    # --- in the background -----------------------------------------------------------------

    def start(self, poll_interval: float = 0.2, coalesce: float = 0.01) -> None:
        """Follows the log in a thread of its own (see ``follow``)."""
        self.setup()
        self._thread = threading.Thread(target=self.follow, args=(poll_interval, coalesce),
                                        name="projections", daemon=True)
        self._thread.start()

    def follow(self, poll_interval: float = 0.2, coalesce: float = 0.01,
               after_pass: Callable[[], None] | None = None) -> None:
        """Applies the log as it grows, until ``interrupt`` or ``stop``: woken by this
        server's commits (then waiting ``coalesce`` seconds, so that a busy log is applied in
        larger batches), and polling every ``poll_interval`` for other servers' commits.

        Never gives up: a batch that fails is tried again after a bounded backoff, so the
        read models come back by themselves within a second or so of the database.
        ``after_pass`` runs after each pass that reached the log's head."""
        while not self._stopping.is_set():
            try:
                self.catch_up()
                if after_pass is not None:
                    after_pass()
            except Exception as error:
                self._stopping.wait(self.failed(error))
                continue
            self.outage.succeeded()
            if self._wake.wait(poll_interval):
                self._stopping.wait(coalesce)
            self._wake.clear()

    def interrupt(self) -> None:
        """Makes ``follow`` return soon (safe from a signal handler)."""
        self._stopping.set()
        self._wake.set()

    def failed(self, error: Exception) -> float:
        """A batch failed (its transaction rolled back): forgets the page read ahead, which
        may have failed too, and returns how long to wait before trying again. A lost
        database is one outage, logged once; anything else is logged with its traceback,
        since no retry will cure it by itself."""
        self._ahead = None
        if isinstance(error, UNAVAILABLE):
            self.app.check_connections()  # the log is read through the event store's pool
        else:
            log.exception("projection batch failed; retrying", exc_info=error)
        return self.outage.failed(error)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self.interrupt()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._reader is not None:
            self._reader.shutdown(wait=True, cancel_futures=True)
            self._reader = None
            self._ahead = None
        self._link.discard()

    def wait_for(self, position: int, timeout: float) -> bool:
        """Blocks until this process has applied (or seen applied) ``position``."""
        deadline = time.monotonic() + timeout
        with self._advanced:
            while self.position < position:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._advanced.wait(min(left, 0.05))
        return True
