"""Group commit changes nothing a command decides: any sequence of commands run as one batch
answers and records exactly what the same commands run one batch each do.

Inside a batch, commands read the aggregates shared, without copies of their own, and a
command's decided events are applied only when it succeeds (application/unit_of_work.py).
So a later command must see an earlier one's changes, a refused one (even right after
another changed the same order) must leave no trace, and the answer handed to each command
must stay as that command left it while later commands of the batch change the same
aggregate."""

from __future__ import annotations

import tempfile
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.application import commands as c
from ledger.application.ledger_app import LedgerApplication, Outcome
from ledger.bootstrap import build_application
from ledger.domain.errors import LedgerError
from ledger.domain.order import Order
from tests.conftest import Clock

SHOP = c.Caller("acme", "shop", "storefront")
ADMIN = c.Caller("acme", "ops", "admin")
LINES = (c.NewLine("tea", "drinks", 3, 3333, 2000, "S1"),
         c.NewLine("cup", "ware", 1, 1500, 900, "S2"))
ORDERS = ("O1", "O2")


def command(step: tuple[str, int, int], n: int) -> tuple[c.Caller, c.Command]:
    """One command of the alphabet, keyed ``k<n>``."""
    kind, which, amount = step
    key, order_id = f"k{n}", ORDERS[which % len(ORDERS)]
    seller = ("carol", "bob")[which % 2]
    made: dict[str, tuple[c.Caller, c.Command]] = {
        "place": (SHOP, c.PlaceOrder(key, order_id, f"c{which % 3}", seller, "CNY", LINES)),
        "pay": (SHOP, c.PayOrder(key, order_id, f"w{n}", 11499 if amount % 5 else amount)),
        "complete": (SHOP, c.CompleteOrder(key, order_id)),
        "cancel": (SHOP, c.CancelOrder(key, order_id, "changed their mind")),
        "refund": (SHOP, c.RefundOrder(key, order_id, f"r{n}", (c.RefundLineRequest(
            1 + which % 2, amount % (10_100 if which % 2 == 0 else 1_600) + 1),), "")),
        "open": (SHOP, c.OpenAfterSale(key, order_id, f"case{which % 2}", 1, "broken")),
        "close": (SHOP, c.CloseAfterSale(key, order_id, f"case{which % 2}", "mended")),
        "move": (ADMIN, c.MoveReseller(key, "carol", ("alice", "bob", "")[which % 3],
                                       "reorganised")),
        "bind": (SHOP, c.BindCustomer(key, f"c{which % 3}", seller)),
    }
    return made[kind]


STEPS = st.lists(st.tuples(
    st.sampled_from(["place", "pay", "complete", "cancel", "refund", "open", "close", "move",
                     "bind", "again"]),
    st.integers(0, 5), st.integers(1, 12000)), min_size=1, max_size=14)


def ledger(folder: str, name: str) -> LedgerApplication:
    app = build_application(f"sqlite:///{folder}/{name}.sqlite3", Clock())
    for key, (reseller, sponsor) in enumerate((("alice", ""), ("bob", "alice"),
                                              ("carol", "bob"))):
        [done] = app.run_batch([(SHOP, c.EnrollReseller(f"e{key}", reseller, sponsor, "",
                                                          not sponsor))])
        assert isinstance(done, Outcome), done
    return app


def said(result: Outcome | BaseException) -> tuple[Any, ...]:
    """What a command was answered: its refusal, or where its answer lives."""
    if isinstance(result, BaseException):
        assert isinstance(result, LedgerError), repr(result)
        return (type(result).__name__, getattr(result, "reason", ""))
    return (result.ref, result.replayed)


def figures(order: Order) -> tuple[Any, ...]:
    return (order.version, order.status, order.payment_postings, order.reversed,
            order.refunded_by_line, sorted(order.refunds),
            sorted((k, v.open) for k, v in order.cases.items()), order.upline_chain)


def log(app: LedgerApplication) -> list[tuple[Any, ...]]:
    """Each aggregate's events, in order (a batch may interleave aggregates otherwise)."""
    events = [app.mapper.to_domain_event(item)
              for item in app.recorder.select_notifications(1, 100_000)]
    return sorted((str(e.originator_id), e.originator_version, type(e).__qualname__)
                  for e in events)


@settings(max_examples=40, deadline=None)
@given(steps=STEPS)
def test_a_batch_answers_and_records_what_one_command_at_a_time_does(
    steps: list[tuple[str, int, int]],
) -> None:
    # O1 is placed and paid at the start of the batch, so later steps find it paid.
    items = [command(("place", 0, 1), 100), command(("pay", 0, 1), 101)]
    for n, step in enumerate(steps):
        if step[0] == "again" and items:
            items.append(items[-1])  # a retry of the key before it, in the same batch
        elif step[0] != "again":
            items.append(command(step, n))
    with tempfile.TemporaryDirectory() as folder:
        batched, alone = ledger(folder, "batched"), ledger(folder, "alone")
        try:
            together = batched.run_batch(items)
            apart = [result for item in items for result in alone.run_batch([item])]
            assert [said(r) for r in together] == [said(r) for r in apart]
            for result in together:
                if isinstance(result, Outcome) and result.answer is not None:
                    # As the command left it, though later ones changed the same aggregate.
                    stored = batched.answer(result.ref)
                    assert result.answer.version == result.ref.version
                    if isinstance(stored, Order):
                        assert figures(result.answer) == figures(stored)
            assert log(batched) == log(alone)
            for order_id in ORDERS:
                try:
                    one = figures(batched.order(SHOP, order_id))
                except LedgerError:
                    one = ()
                try:
                    other = figures(alone.order(SHOP, order_id))
                except LedgerError:
                    other = ()
                assert one == other, order_id
        finally:
            batched.close()
            alone.close()
