"""A simulation in the spirit of TigerBeetle's VOPR, made with hypothesis' stateful testing.

Random sequences of every kind of command (enrol, bind, move, place, pay, complete, refund,
open and close an after-sale case, settle, request, approve, reject, pay and fail a payout,
close a day), with crashes between deciding and committing and between committing and
answering, restarts of the application, and retries with the same idempotency key. After
every step the ledger's invariants are checked against the log itself:

- every event's postings sum to zero, per currency;
- no share reverses more than it earned on its order;
- no payout is accepted above what the account had available;
- no order is settled twice;
- every acknowledged write is in the log once, and its retry answers it again;
- the read models, caught up, show exactly the balances the log's postings add up to.

It drives the application (``LedgerApplication.run_batch``), not gRPC, on a SQLite file (and,
slower and fewer, on PostgreSQL): a restart is a new application over the same store, as a
new server process would be.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import uuid
from collections import defaultdict
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from ledger.projections.clock import micros
from ledger.projections.reader import ReadModels
from ledger.projections.runner import ProjectionRunner

from ledger.application import commands as c
from ledger.application.idempotency import KeyBook
from ledger.application.ledger_app import LedgerApplication, Outcome
from ledger.application.unit_of_work import UnitOfWork
from ledger.bootstrap import build_application
from ledger.domain.errors import LedgerError
from ledger.domain.order import Order
from tests.conftest import POSTGRES_URL, Clock, drop_schema
from tests.helpers import identified

SHOP = c.Caller("acme", "shop-a", "storefront")
ADMIN = c.Caller("acme", "ops", "admin")
FINANCE = c.Caller("acme", "fin", "finance")
TOP = ("alice", "bob", "carol")  # alice ← bob ← carol, enrolled and identified at the start
BUCKETS = ("frozen", "available", "in_flight", "paid_out", "clearing")

amounts = st.integers(min_value=1, max_value=500_000)


class LedgerSimulation(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="ledger-sim-")
        self.url = self.store()
        self.clock = Clock()
        self.count = 0
        self.resellers: list[str] = []
        self.orders: list[str] = []
        self.paid: list[str] = []
        self.cases: list[tuple[str, str]] = []  # (order id, case id) opened
        self.payouts: list[str] = []
        # (principal, key) -> the command and its first answer
        self.acknowledged: dict[tuple[str, str], tuple[c.Command, Outcome]] = {}
        self.unanswered: list[tuple[c.Caller, c.Command]] = []  # committed, answer lost
        self.undecided: list[tuple[c.Caller, c.Command]] = []  # decided, never committed
        # What the log says, read once per event (``_read_log``).
        self.seen = 0
        self.balances: dict[tuple[str, str, str], int] = defaultdict(int)
        self.earned: dict[tuple[str, str], int] = defaultdict(int)  # (order, account)
        self.reversed: dict[tuple[str, str], int] = defaultdict(int)
        self.settled: dict[str, int] = defaultdict(int)
        self._open()
        for key, (reseller, sponsor) in enumerate(zip(TOP, ("", *TOP), strict=False)):
            self._ok(SHOP, c.EnrollReseller(f"e{key}", reseller, sponsor, "", not sponsor))
            self._ok(FINANCE, identified(f"id-{reseller}", reseller))
            self.resellers.append(reseller)

    # --- plumbing ------------------------------------------------------------------------

    def store(self) -> str:
        """A fresh store for one history: a SQLite file."""
        return f"sqlite:///{self.folder}/ledger.sqlite3"

    def _open(self) -> None:
        self.app: LedgerApplication = build_application(self.url, self.clock)
        self.runner = ProjectionRunner(self.app, self.url)
        self.runner.setup()
        self.models = ReadModels(self.url)

    def _close(self) -> None:
        self.models.close()
        self.runner.stop()
        self.app.close()

    def teardown(self) -> None:
        self._close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _key(self, kind: str) -> str:
        self.count += 1
        return f"{kind}-{self.count}"

    def send(self, caller: c.Caller, command: c.Command) -> Outcome | LedgerError:
        """One command as a request: a refusal is one of the ledger's errors, never anything
        else; an answer is recorded, and a retry of an answered key must replay it."""
        [result] = self.app.run_batch([(caller, command)])
        if not isinstance(result, Outcome):
            assert isinstance(result, LedgerError), repr(result)
            return result
        key = (caller.principal, command.idempotency_key)
        if key in self.acknowledged:
            first = self.acknowledged[key][1]
            assert result.replayed, (command, result)
            assert (result.ref, result.log_position) == (first.ref, first.log_position)
        else:
            self.acknowledged[key] = (command, result)
        return result

    def _ok(self, caller: c.Caller, command: c.Command) -> Outcome:
        result = self.send(caller, command)
        assert isinstance(result, Outcome), result
        return result

    def _read_log(self) -> None:
        """Reads the events written since the last look, checking each as it goes."""
        for item in self.app.recorder.select_notifications(self.seen + 1, 10_000):
            self.seen = item.id
            event = self.app.mapper.to_domain_event(item)
            postings = getattr(event, "postings", None)
            if postings is None and hasattr(event, "refund"):
                postings = event.refund.postings
            sums: dict[str, int] = defaultdict(int)
            for p in postings or ():
                sums[p.currency] += p.amount
                self.balances[(p.account, p.bucket, p.currency)] += p.amount
            assert not any(sums.values()), (type(event).__qualname__, sums)
            name = type(event).__qualname__
            if isinstance(event, Order.Settled):
                self.settled[str(event.originator_id)] += 1
            for p in postings or ():
                if not p.account.startswith("reseller:"):
                    continue
                ref = str(event.originator_id)
                if name.endswith(".Paid") and p.amount > 0:
                    self.earned[(ref, p.account)] += p.amount
                elif hasattr(event, "refund") and p.amount < 0:
                    self.reversed[(ref, p.account)] -= p.amount

    # --- the tree ------------------------------------------------------------------------

    @rule(sponsor=st.integers(0, 1000))
    def enrol(self, sponsor: int) -> None:
        reseller = f"r{self.count}"
        under = self.resellers[sponsor % len(self.resellers)]
        if isinstance(self.send(SHOP, c.EnrollReseller(self._key("enrol"), reseller, under, "",
                                                        False)), Outcome):
            self.resellers.append(reseller)
            self._ok(FINANCE, identified(self._key("id"), reseller))

    @rule(who=st.integers(0, 1000), to=st.integers(0, 1000))
    def move(self, who: int, to: int) -> None:
        moving = self.resellers[who % len(self.resellers)]
        under = self.resellers[to % len(self.resellers)]
        self.send(ADMIN, c.MoveReseller(self._key("move"), moving, under, "reorganised"))

    @rule(customer=st.integers(0, 20), seller=st.integers(0, 1000))
    def bind(self, customer: int, seller: int) -> None:
        self.send(SHOP, c.BindCustomer(self._key("bind"), f"c{customer}",
                                       self.resellers[seller % len(self.resellers)]))

    # --- orders --------------------------------------------------------------------------

    @rule(seller=st.integers(0, 1000), customer=st.integers(0, 20),
          lines=st.lists(st.tuples(st.integers(1, 3), amounts, st.integers(0, 100)),
                         min_size=1, max_size=3),
          then=st.sampled_from(["pay", "complete", "complete", "nothing"]))
    def place(self, seller: int, customer: int, lines: list[tuple[int, int, int]],
              then: str) -> None:
        """Placed; then paid, or paid and received, or left unpaid."""
        order_id = f"O{self.count}"
        new = tuple(c.NewLine(f"sku{i}", "general", qty, price, price * supply // 100, "S1")
                    for i, (qty, price, supply) in enumerate(lines))
        placed = self.send(SHOP, c.PlaceOrder(self._key("place"), order_id, f"c{customer}",
                                              self.resellers[seller % len(self.resellers)],
                                              "CNY", new))
        if isinstance(placed, Outcome):
            self.orders.append(order_id)
            if then != "nothing":
                total = sum(line.quantity * line.unit_sale_price for line in new)
                if isinstance(self.send(SHOP, c.PayOrder(self._key("pay"), order_id,
                                                         f"w-{order_id}", total)), Outcome):
                    self.paid.append(order_id)
                    if then == "complete":
                        self.send(SHOP, c.CompleteOrder(self._key("complete"), order_id))

    @rule(seller=st.integers(0, 1000), price=amounts)
    def sell(self, seller: int, price: int) -> None:
        """The common case: an order placed, paid and received (so that settlements and
        payouts have something to work on)."""
        self.place(seller, customer=0, lines=[(1, price, 40)], then="complete")

    def _pick(self, which: int, paid: bool) -> str:
        """An order: mostly a paid one, where the interesting rules are."""
        among = self.paid if paid and self.paid else self.orders
        return among[which % len(among)]

    @precondition(lambda self: self.orders)
    @rule(which=st.integers(0, 1000), paid=st.sampled_from([True, True, True, False]))
    def complete(self, which: int, paid: bool) -> None:
        self.send(SHOP, c.CompleteOrder(self._key("complete"), self._pick(which, paid)))

    @precondition(lambda self: self.orders)
    @rule(which=st.integers(0, 1000), line=st.integers(1, 3), percent=st.integers(1, 120),
          paid=st.sampled_from([True, True, True, False]))
    def refund(self, which: int, line: int, percent: int, paid: bool) -> None:
        """A share of the line's price, now and then more than is left of it."""
        order_id = self._pick(which, paid)
        order = self.app.order(SHOP, order_id)
        price = next((item.quantity * item.unit_sale_price for item in order.lines
                      if item.line_no == line), 100)
        key = self._key("refund")
        self.send(SHOP, c.RefundOrder(key, order_id, key, (c.RefundLineRequest(
            line, max(1, price * percent // 100)),), "returned"))

    @precondition(lambda self: self.orders)
    @rule(which=st.integers(0, 1000), line=st.integers(1, 3),
          paid=st.sampled_from([True, True, True, False]))
    def open_case(self, which: int, line: int, paid: bool) -> None:
        order_id = self._pick(which, paid)
        case = self._key("case")
        if isinstance(self.send(SHOP, c.OpenAfterSale(case, order_id, case, line, "broken")),
                      Outcome):
            self.cases.append((order_id, case))

    @precondition(lambda self: self.cases)
    @rule(which=st.integers(0, 1000))
    def close_case(self, which: int) -> None:
        order_id, case = self.cases[which % len(self.cases)]
        self.send(SHOP, c.CloseAfterSale(self._key("close-case"), order_id, case, "resolved"))

    # --- time, settlement, payouts and days -------------------------------------------------

    @rule(days=st.sampled_from([0, 8, 9]))
    def settle(self, days: int) -> None:
        self.clock.advance(days=days)
        self.runner.catch_up()
        due = tuple(self.models.due_orders("acme", micros(self.clock()), 100))
        self.send(ADMIN, c.RunSettlement(self._key("settle"), due))

    @rule(who=st.integers(0, 1000), percent=st.integers(1, 130))
    def request_payout(self, who: int, percent: int) -> None:
        """Mostly within what is available, sometimes above it."""
        account = f"reseller:{self.resellers[who % len(self.resellers)]}"
        self._read_log()
        available = self.balances[(account, "available", "CNY")]
        amount = max(1, available * percent // 100)
        result = self.send(SHOP, c.RequestPayout(self._key("payout"), account, "CNY", amount))
        if isinstance(result, Outcome):
            assert amount <= available, (account, amount, available)
            self.payouts.append(self.app.answer(result.ref).payout_id)

    @precondition(lambda self: self.payouts)
    @rule(which=st.integers(0, 1000),
          step=st.sampled_from(["approve", "reject", "paid", "failed"]))
    def payout_step(self, which: int, step: str) -> None:
        payout = self.payouts[which % len(self.payouts)]
        key = self._key(step)
        command: c.Command = {
            "approve": c.ApprovePayout(key, payout),
            "reject": c.RejectPayout(key, payout, "not this time"),
            "paid": c.MarkPayoutPaid(key, payout, f"wx-{key}"),
            "failed": c.MarkPayoutFailed(key, payout, "bank refused"),
        }[step]
        self.send(FINANCE, command)

    @rule()
    def close_yesterday(self) -> None:
        """As FinanceService.CloseDay: shut the day, draw its statement from the read models
        once they hold the whole log, close it with that statement."""
        day = (self.clock() + timedelta(hours=8) - timedelta(days=1)).date().isoformat()
        close = c.CloseDay(f"close-{day}", day)
        if isinstance(self.send(FINANCE, c.BeginClosingDay.first_step_of(close)), Outcome):
            self.runner.catch_up()
            statement = self.models.day_statement("acme", day, "Asia/Shanghai")
            self.send(FINANCE, dataclasses.replace(close, statement=statement))

    # --- faults and retries ----------------------------------------------------------------

    @precondition(lambda self: self.acknowledged)
    @rule(which=st.integers(0, 10_000))
    def retry_an_answered_write(self, which: int) -> None:
        """The same key again, as a client that never saw the answer would: the same answer,
        nothing written twice."""
        keys = list(self.acknowledged)
        principal, _ = key = keys[which % len(keys)]
        caller = {SHOP.principal: SHOP, ADMIN.principal: ADMIN,
                  FINANCE.principal: FINANCE}[principal]
        before = self.app.log_position()
        self.send(caller, self.acknowledged[key][0])
        assert self.app.log_position() == before

    @rule(seller=st.integers(0, 1000), amount=amounts)
    def crash_after_commit(self, seller: int, amount: int) -> None:
        """A write commits and the process dies before it answers: restarted, the client's
        retry finds it done."""
        command = c.PlaceOrder(self._key("lost"), f"L{self.count}", "c0",
                               self.resellers[seller % len(self.resellers)], "CNY",
                               (c.NewLine("sku", "general", 1, amount, amount // 2, "S1"),))
        [result] = self.app.run_batch([(SHOP, command)])
        if isinstance(result, Outcome):
            self.unanswered.append((SHOP, command))
        self.restart()

    @rule(seller=st.integers(0, 1000), amount=amounts)
    def crash_before_commit(self, seller: int, amount: int) -> None:
        """A command decided and never committed (the process died in between): nothing of
        it is in the log, nothing of it stays in the writer's memory, and its retry writes
        it once."""
        order_id = f"U{self.count}"
        command = c.PlaceOrder(self._key("undecided"), order_id, "c0",
                               self.resellers[seller % len(self.resellers)], "CNY",
                               (c.NewLine("sku", "general", 1, amount, amount // 2, "S1"),))
        before = self.app.log_position()
        uow = UnitOfWork(self.app.repository, self.app.cache)
        try:
            self.app._decide(uow, KeyBook(self.app.idempotency_keys.recorded_keys), SHOP,
                             command)
        except LedgerError:
            return
        self.undecided.append((SHOP, command))
        assert self.app.log_position() == before

    @precondition(lambda self: self.unanswered or self.undecided)
    @rule()
    def clients_retry(self) -> None:
        for caller, command in self.unanswered:
            answer = self._ok(caller, command)
            assert answer.replayed, command
        for caller, command in self.undecided:
            answer = self._ok(caller, command)
            assert not answer.replayed, command
            self.orders.append(command.order_id)  # type: ignore[attr-defined]
        self.unanswered.clear()
        self.undecided.clear()

    @rule()
    def restart(self) -> None:
        self._close()
        self._open()

    # --- what must always hold -----------------------------------------------------------

    @invariant()
    def postings_sum_to_zero_and_no_share_reverses_more_than_it_earned(self) -> None:
        self._read_log()
        for key, amount in self.reversed.items():
            assert amount <= self.earned[key], (key, amount, self.earned[key])

    @invariant()
    def no_order_is_settled_twice(self) -> None:
        assert all(n == 1 for n in self.settled.values()), dict(self.settled)

    @invariant()
    def every_acknowledged_write_is_in_the_log_once(self) -> None:
        written = {(n.originator_id, n.originator_version)
                   for n in self.app.recorder.select_notifications(1, 100_000)}
        for _, outcome in self.acknowledged.values():
            assert (outcome.ref.aggregate_id, outcome.ref.version) in written, outcome

    @invariant()
    def read_models_equal_the_logs_postings(self) -> None:
        self.runner.catch_up()
        self._read_log()
        accounts = {account for account, _, _ in self.balances}
        live = {(account, bucket, b.currency): getattr(b, bucket)
                for account in accounts for b in self.models.balances("acme", account)
                for bucket in BUCKETS if getattr(b, bucket)}
        logged = {k: v for k, v in self.balances.items() if v}
        assert live == logged


class PostgresSimulation(LedgerSimulation):
    """The slower profile: the same histories on PostgreSQL, in a schema of their own (a
    small pool: the machine's connections are shared)."""

    def store(self) -> str:
        return f"{POSTGRES_URL}?schema=sim_{uuid.uuid4().hex[:12]}&pool_size=2"

    def teardown(self) -> None:
        super().teardown()
        drop_schema(self.url)


def _run(machine: type[RuleBasedStateMachine], examples: int, steps: int) -> None:
    test = machine.TestCase
    test.settings = settings(max_examples=examples, stateful_step_count=steps,
                             deadline=None, suppress_health_check=list(HealthCheck))
    test().runTest()


def test_random_histories_with_crashes_and_retries_keep_every_invariant() -> None:
    _run(LedgerSimulation, examples=20, steps=100)


@pytest.mark.postgres
def test_random_histories_on_postgresql_keep_every_invariant() -> None:
    _run(PostgresSimulation, examples=4, steps=60)
