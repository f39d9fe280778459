"""Each storefront numbers its own orders (DOMAIN.md, "Who may do what"): an order id is
unique within its storefront, two storefronts may use the same id, and neither learns
anything of the other's orders. Orders placed before ids were scoped to storefronts keep
working for the storefront that placed them. (Over gRPC: tests/test_grpc_api.py and
tests/test_settlement_payouts.py.)"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ledger.projections.clock import micros
from ledger.projections.reader import ReadModels
from ledger.projections.runner import ProjectionRunner

from ledger.application import commands as c
from ledger.application.ledger_app import LedgerApplication
from ledger.bootstrap import build_application
from ledger.domain.errors import AlreadyExists, LedgerError, NotFound
from ledger.domain.order import Order, OrderKey
from ledger.domain.settlement import SettlementRun
from ledger.domain.split import LineItem
from tests.conftest import Clock
from tests.integration.test_event_log import tea, team_commands

SHOP_A = c.Caller("acme", "shop-a", "storefront")
SHOP_B = c.Caller("acme", "shop-b", "storefront")
ADMIN = c.Caller("acme", "ops", "admin")
NOW = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


def placed(storefront: str, order_id: str, *, aggregate_id: object = None) -> Order:
    """An order as ``Order(...)`` makes it, or under the id given (as older code made it)."""
    fields = dict(platform_id="acme", order_id=order_id, storefront_id=storefront,
                  customer_id="c1", seller_id="carol", currency="CNY",
                  lines=[LineItem(1, "tea", "drinks", 3, 3333, 2000, "S1")], placed_at=NOW)
    if aggregate_id is None:
        return Order(**fields)
    return Order._create(Order.Placed, id=aggregate_id, **fields)


# --- the domain ------------------------------------------------------------------------------


def test_an_order_id_names_an_order_only_together_with_its_storefront() -> None:
    a, b = placed("shop-a", "O1"), placed("shop-b", "O1")
    assert a.id == Order.create_id("acme", "shop-a", "O1") != b.id
    assert (a.key, b.key) == (OrderKey("shop-a", "O1"), OrderKey("shop-b", "O1"))
    # Where the storefront is not implied, the name says it.
    assert (a.name, b.name) == ("shop-a/O1", "shop-b/O1")
    assert Order.legacy_id("acme", "O1") not in (a.id, b.id)


def test_an_order_placed_before_ids_were_scoped_keeps_its_id_and_name() -> None:
    """Its id was unique in the platform; it stays the storefront's that placed it, and keeps
    the name it was recorded with, so the days closed before are drawn again unchanged."""
    old = placed("shop-a", "O1", aggregate_id=Order.legacy_id("acme", "O1"))
    assert old.name == "O1" and old.key == OrderKey("shop-a", "O1")
    assert old.placed_by("shop-a") and not old.placed_by("shop-b")


def test_a_settlement_run_recorded_with_order_ids_alone_reads_them_without_storefront() -> None:
    run = SettlementRun("acme", "k", NOW, [OrderKey("shop-a", "O1")])
    assert run.orders == (OrderKey("shop-a", "O1"),)
    before = SettlementRun("acme", "k", NOW, ["O1"])  # type: ignore[list-item]
    assert before.orders == (OrderKey("", "O1"),)


# --- through the application, on SQLite and PostgreSQL ---------------------------------------


def do(app: LedgerApplication, caller: c.Caller, command: c.Command) -> object:
    [result] = app.run_batch([(caller, command)])
    return result


def refusals(app: LedgerApplication, caller: c.Caller, order_id: str) -> list[tuple[str, str]]:
    """What each order command of ``caller`` on ``order_id`` is refused with."""
    commands = [
        c.PayOrder("x1", order_id, "w", 9999), c.CompleteOrder("x2", order_id),
        c.CancelOrder("x3", order_id, ""),
        c.RefundOrder("x4", order_id, "r", (c.RefundLineRequest(1, 1),), ""),
        c.OpenAfterSale("x5", order_id, "k", 1, ""), c.CloseAfterSale("x6", order_id, "k", ""),
    ]
    out = []
    for command in commands:
        result = do(app, caller, command)
        assert isinstance(result, LedgerError), result
        out.append((type(result).__name__, str(result)))
    try:
        app.order(caller, order_id)
    except LedgerError as error:
        out.append((type(error).__name__, str(error)))
    return out


def test_another_storefronts_order_is_refused_exactly_as_an_id_nobody_used(
    store_url: str, clock: Clock
) -> None:
    app = build_application(store_url, clock)
    try:
        for command in team_commands():
            do(app, SHOP_A, command)
        nobody_used = refusals(app, SHOP_B, "O1")
        assert {kind for kind, _ in nobody_used} == {NotFound.__name__}
        do(app, SHOP_A, c.PlaceOrder("p", "O1", "c1", "carol", "CNY", tea()))
        do(app, SHOP_A, c.PayOrder("y", "O1", "w", 9999))
        assert refusals(app, SHOP_B, "O1") == nobody_used
        mine = do(app, SHOP_B, c.PlaceOrder("p", "O1", "c2", "bob", "CNY", tea(1)))
        assert mine.ref.aggregate_id == Order.create_id("acme", "shop-b", "O1")  # type: ignore[attr-defined]
        assert (app.order(SHOP_A, "O1").total, app.order(SHOP_B, "O1").total) == (9999, 3333)
        assert isinstance(do(app, SHOP_B, c.PlaceOrder("p2", "O1", "c2", "bob", "CNY", tea())),
                          AlreadyExists)
    finally:
        app.close()


def test_an_order_placed_before_ids_were_scoped_stays_its_storefronts(
    store_url: str, clock: Clock
) -> None:
    """A log written before: shop-a's O1 lies under the platform-wide id. Shop-a still pays,
    completes and settles it, and cannot place another O1; shop-b cannot see it, and places
    an O1 of its own. Statements name the old order as they did (order:O1)."""
    app = build_application(store_url, clock)
    runner = ProjectionRunner(app, store_url)
    models = ReadModels(store_url)
    try:
        for command in team_commands():
            do(app, SHOP_A, command)
        app.save_staged([placed("shop-a", "O1", aggregate_id=Order.legacy_id("acme", "O1"))])
        paid = do(app, SHOP_A, c.PayOrder("y", "O1", "w", 9999))
        assert paid.ref.aggregate_id == Order.legacy_id("acme", "O1")  # type: ignore[attr-defined]
        assert isinstance(do(app, SHOP_A, c.PlaceOrder("p", "O1", "c1", "carol", "CNY", tea())),
                          AlreadyExists)
        assert isinstance(do(app, SHOP_B, c.PayOrder("y", "O1", "w", 9999)), NotFound)
        do(app, SHOP_B, c.PlaceOrder("p", "O1", "c2", "carol", "CNY", tea()))
        do(app, SHOP_B, c.PayOrder("y", "O1", "w", 9999))
        for shop in (SHOP_A, SHOP_B):
            do(app, shop, c.CompleteOrder("d", "O1"))
        clock.advance(days=8)
        runner.setup()
        runner.catch_up()
        due = models.due_orders("acme", micros(clock()), 500)
        assert set(due) == {OrderKey("shop-a", "O1"), OrderKey("shop-b", "O1")}
        assert len(due) == 2
        settled = do(app, ADMIN, c.RunSettlement("s1", tuple(due)))
        assert app.answer(settled.ref).orders == tuple(due)  # type: ignore[attr-defined]
        again = do(app, ADMIN, c.RunSettlement("s2", tuple(due)))
        assert app.answer(again.ref).orders == ()  # type: ignore[attr-defined]
        runner.catch_up()
        day = "2026-11-01"
        movements = models.account_movements("acme", "reseller:carol", "2026-11-01",
                                                  "2026-11-09", "Asia/Shanghai", 100)
        assert sorted({(m.kind, m.source) for m in movements}) == [
            ("payment", "order:O1"), ("payment", "order:shop-b/O1"),
            ("settlement", "order:O1"), ("settlement", "order:shop-b/O1")]
        statement = models.day_statement("acme", day, "Asia/Shanghai")
        runner.reset()
        runner.catch_up()
        assert models.day_statement("acme", day, "Asia/Shanghai") == statement
    finally:
        models.close()
        runner.stop()
        app.close()


@pytest.mark.parametrize("name", ["", "a/b"])
def test_a_storefront_key_name_can_end_an_orders_name(name: str) -> None:
    """Orders are named <storefront>/<order id>: the storefront's name is not empty and
    holds no "/", so the name reads one way only."""
    from ledger.api.auth import STOREFRONT, ApiKey, KeyConfigError, KeyRing

    with pytest.raises(KeyConfigError, match="storefront"):
        KeyRing([ApiKey(name, STOREFRONT, "acme", "0" * 64)])
