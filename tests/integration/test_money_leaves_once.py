"""Properties of settlement and payouts over any history, and concurrent payout requests."""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import wait
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis import strategies as st
from ledger.projections.clock import micros
from ledger.projections.reader import ReadModels
from ledger.projections.runner import ProjectionRunner

from ledger.application import commands as c
from ledger.application.group_commit import GroupCommitter
from ledger.application.ledger_app import Outcome
from ledger.bootstrap import build_application
from ledger.domain.errors import RuleViolation
from ledger.domain.order import Order, OrderKey
from ledger.domain.payout import Payout
from ledger.domain.periods import PeriodBook, local_day
from ledger.domain.wallet import Wallet
from ledger.domain.withholding import TaxYear
from tests.conftest import Clock, drop_schema, example_store
from tests.helpers import identified
from tests.integration.test_event_log import all_events, balances_from_log

steps = st.lists(
    st.one_of(
        st.tuples(st.just("order"), st.integers(0, 7), st.integers(3000, 60_000)),
        st.tuples(st.just("order"), st.integers(0, 7), st.integers(3000, 60_000)),
        st.tuples(st.just("complete"), st.integers(0, 30), st.just(0)),
        st.tuples(st.just("refund"), st.integers(0, 30), st.integers(1, 100)),
        st.tuples(st.just("case"), st.integers(0, 30), st.just(0)),
        st.tuples(st.just("settle"), st.just(0), st.just(0)),
        st.tuples(st.just("withdraw"), st.integers(0, 3), st.integers(1, 100)),
        st.tuples(st.just("withdraw"), st.integers(0, 3), st.integers(1, 100)),
        st.tuples(st.just("payout_step"), st.integers(0, 30), st.integers(0, 3)),
        st.tuples(st.just("payout_step"), st.integers(0, 30), st.integers(0, 3)),
        st.tuples(st.just("days"), st.integers(1, 9), st.just(0)),
        st.tuples(st.just("close"), st.just(0), st.just(0)),
    ),
    max_size=45,
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=steps)
def test_no_account_is_paid_more_than_it_earned(
    store_url: str, tmp_path: Path, history: list[tuple[str, int, int]]
) -> None:
    url = example_store(store_url, tmp_path)
    clock = Clock()
    app = build_application(url, clock)
    runner = ProjectionRunner(app, url)
    runner.setup()
    models = ReadModels(url)
    shop, admin, fin = (c.Caller("acme", "shop", "storefront"), c.Caller("acme", "ops", "admin"),
                        c.Caller("acme", "fin", "finance"))
    resellers = ["r0", "r1", "r2", "r3"]
    orders: list[tuple[str, int]] = []
    payouts: list[str] = []
    closed: dict[str, str] = {}

    def do(caller: c.Caller, command: c.Command) -> Outcome | BaseException:
        return app.run_batch([(caller, command)])[0]

    try:
        do(shop, c.EnrollReseller("e0", "r0", "", "", True))
        for n in range(1, 4):
            do(shop, c.EnrollReseller(f"e{n}", f"r{n}", f"r{n - 1}", "", False))
        for r in resellers:
            do(fin, identified(f"id-{r}", r))
        # Every history starts with money to withdraw: three sales, received and settled.
        opening = [("order", 4, 30_000), ("order", 5, 45_000), ("order", 7, 60_000),
                   ("settle", 0, 0), ("withdraw", 0, 50)]
        for n, (kind, a, b) in enumerate(opening + history):
            key = f"k{n}"
            if kind == "order":
                oid = f"O{n}"
                do(shop, c.PlaceOrder(key + "p", oid, f"c{n}", resellers[a % 4], "CNY",
                                      (c.NewLine("x", "", 1, b, b // 3, "S1"),)))
                do(shop, c.PayOrder(key, oid, "w", b))
                if a >= 4:  # received at once
                    do(shop, c.CompleteOrder(key + "c", oid))
                orders.append((oid, b))
            elif kind in ("complete", "refund", "case") and orders:
                oid, total = orders[a % len(orders)]
                if kind == "complete":
                    do(shop, c.CompleteOrder(key, oid))
                elif kind == "case":
                    do(shop, c.OpenAfterSale(key, oid, key, 1, "dispute"))
                else:
                    do(shop, c.RefundOrder(key, oid, key,
                                           (c.RefundLineRequest(1, max(total * b // 100, 1)),),
                                           ""))
            elif kind == "settle":
                clock.advance(days=8)
                runner.catch_up()
                due = models.due_orders("acme", micros(clock()), 500)
                do(admin, c.RunSettlement(key, tuple(due)))
            elif kind == "withdraw":
                # The richest reseller asks for a share of what they have (or the minimum).
                wallets = [app.find(Wallet.create_id("acme", f"reseller:{r}", "CNY"))
                           for r in resellers]
                richest = max((w for w in wallets if w is not None),
                              key=lambda w: w.available, default=None)
                account = richest.account if richest else f"reseller:r{a}"
                available = richest.available if richest else 0
                result = do(shop, c.RequestPayout(key, account, "CNY",
                                                  max(available * b // 100, 1000)))
                if isinstance(result, Outcome):
                    payouts.append(app.answer(result.ref).payout_id)
            elif kind == "payout_step" and payouts:
                pid = payouts[a % len(payouts)]
                step: c.Command = [
                    c.ApprovePayout(key, pid), c.MarkPayoutPaid(key, pid, "ref"),
                    c.MarkPayoutFailed(key, pid, "rail said no"),
                    c.RejectPayout(key, pid, "no"),
                ][b]
                do(fin, step)
            elif kind == "days":
                clock.advance(days=a)
            elif kind == "close":
                # Finance closes every day that is over and not closed yet, in order (days
                # close one after another).
                clock.advance(days=1)
                yesterday = local_day(clock() - timedelta(days=1), "Asia/Shanghai")
                runner.catch_up()
                book = app.find(PeriodBook.create_id("acme"))
                day = book.next_to_close if book is not None and book.closed else yesterday
                while day <= yesterday:
                    statement = models.day_statement("acme", day, "Asia/Shanghai")
                    result = do(fin, c.CloseDay(f"{key}-{day}", day, statement))
                    assert isinstance(result, Outcome), result
                    closed[day] = statement.digest
                    day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        runner.catch_up()
        note(f"payouts: {len(payouts)}, closed days: {len(closed)}")

        # Postings sum to zero; the read models agree with the log.
        from_log = balances_from_log(app)
        totals: dict[str, int] = defaultdict(int)
        for (_, _, currency), amount in from_log.items():
            totals[currency] += amount
        assert all(v == 0 for v in totals.values())

        # No account was ever paid more than was released to it.
        released: dict[str, int] = defaultdict(int)
        for event in all_events(app):
            if isinstance(event, Order.Settled):
                for p in event.postings:
                    if p.bucket == "available":
                        released[p.account] += p.amount
        for (account, bucket, _), amount in from_log.items():
            if bucket == "paid_out":
                assert amount <= released[account], account
        for pid in payouts:
            payout = app.find(Payout.create_id("acme", pid))
            wallet = app.find(Wallet.create_id("acme", payout.account, "CNY"))
            held = {(a, bkt): v for (a, bkt, _), v in from_log.items() if a == payout.account}
            assert wallet.available == held.get((payout.account, "available"), 0)
            assert wallet.in_flight == held.get((payout.account, "in_flight"), 0)
            assert wallet.paid_out == held.get((payout.account, "paid_out"), 0)

        # A closed day's statement never changes: not later, not after a rebuild.
        book = app.find(PeriodBook.create_id("acme"))
        for day, digest in closed.items():
            assert book.closed[day].digest == digest
            assert models.day_statement("acme", day, "Asia/Shanghai") == book.closed[day]
        runner.reset()
        runner.catch_up()
        for day in closed:
            assert models.day_statement("acme", day, "Asia/Shanghai") == book.closed[day]
    finally:
        models.close()
        runner.stop()
        app.close()
        if not url.startswith("sqlite"):
            drop_schema(url)


@pytest.mark.postgres
def test_concurrent_payout_requests_never_exceed_the_balance(postgres_url: str) -> None:
    """Two servers (each with its group commit) hammer one reseller's available balance."""
    clock = Clock()
    apps = [build_application(postgres_url, clock) for _ in range(2)]
    shop = c.Caller("acme", "shop", "storefront")
    admin = c.Caller("acme", "ops", "admin")
    first = apps[0]
    for command in (c.EnrollReseller("e", "carol", "", "", True), identified("id", "carol"),
                    *[cmd for n in range(5) for cmd in (
                        c.PlaceOrder(f"p{n}", f"O{n}", "c", "carol", "CNY",
                                     (c.NewLine("x", "", 1, 10_000, 5_000, "S1"),)),
                        c.PayOrder(f"y{n}", f"O{n}", "w", 10_000),
                        c.CompleteOrder(f"d{n}", f"O{n}"))]):
        assert isinstance(first.run_batch([(shop, command)])[0], Outcome)
    clock.advance(days=8)
    first.run_batch([(admin, c.RunSettlement("s", tuple(OrderKey("shop", f"O{n}")
                                                        for n in range(5))))])
    wallet = first.find(Wallet.create_id("acme", "reseller:carol", "CNY"))
    assert wallet.available == 10_000  # 5 × 40% of 50.00
    writers = [GroupCommitter(a, max_batch=8) for a in apps]
    for w in writers:
        w.start()
    futures = [writers[n % 2].submit(
        shop, c.RequestPayout(f"w{n}", "reseller:carol", "CNY", 1_000 + n)) for n in range(60)]
    wait(futures, timeout=120)
    for w in writers:
        w.stop()
    granted = [f.result() for f in futures if f.exception() is None]
    refused_ = [f.exception() for f in futures if f.exception() is not None]
    assert all(isinstance(e, RuleViolation) or type(e).__name__ == "Conflict"
               for e in refused_), refused_
    total = sum(first.answer(o.ref).amount for o in granted)
    assert 0 < total <= 10_000
    # Every payout granted went through carol's year of payouts, one after another: none
    # lost, none counted twice, though two servers computed them at once.
    year = first.find(TaxYear.create_id("acme", "reseller:carol", 2026))
    assert sorted(year.payouts) == sorted(first.answer(o.ref).payout_id for o in granted)
    after = first.find(Wallet.create_id("acme", "reseller:carol", "CNY"))
    assert after.available == 10_000 - total and after.in_flight == total
    assert after.available >= 0
    for a in apps:
        a.close()
