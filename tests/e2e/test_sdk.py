"""The Python SDK (clients/sdk.py: Ledger, AsyncLedger) against a real served ledger: a
write the server answers ABORTED (a real concurrent write by another server on the same
store) is retried with the same idempotency key and recorded once; UNAVAILABLE is retried;
INVALID_ARGUMENT is not; the asyncio client; read-your-writes; amounts in the currency's unit
both ways (money.py), and the SDK typed against the committed stubs (mypy)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import suppress
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ledger.clients.money import SubunitAmountError, format_amount, to_decimal, to_minor
from ledger.clients.retry import RetryPolicy
from ledger.clients.sdk import AsyncLedger, Ledger, Line

from ledger.api.server import LedgerServer, ServerThread
from ledger.application import commands as c
from ledger.application.ledger_app import MAX_CONFLICT_ATTEMPTS, LedgerApplication
from ledger.bootstrap import build_application
from ledger.config import Settings
from ledger.domain.errors import Conflict
from ledger.v1 import (
    admin_pb2_grpc,
    audit_pb2_grpc,
    finance_pb2_grpc,
    report_pb2,
    report_pb2_grpc,
    storefront_pb2,
    storefront_pb2_grpc,
)
from tests.conftest import Clock, Keys, Running
from tests.e2e.test_metrics import metered, moved, scrape
from tests.integration.test_event_log import SHOP, run
from tests.tcp_proxy import TcpProxy

__all__ = ["metered"]  # the fixture, used by name

ROOT = Path(__file__).resolve().parents[2]
TEA = [Line("tea", 3, Decimal("33.33"), Decimal("20.00"), "S1")]


def sell(ledger: Ledger, order_id: str, reseller: str = "") -> None:
    """O: 3 × 33.33 CNY, paid 99.99 (DOMAIN.md's order O1), through the SDK's Decimal edge."""
    ledger.storefront.place_order(
        order_id, customer_id="c1", currency="CNY", lines=TEA, reseller_id=reseller
    )
    ledger.storefront.pay_order(
        order_id, payment_id=f"pay-{order_id}", amount=Decimal("99.99"), currency="CNY"
    )


# --- ABORTED: a real conflict with another server's write --------------------------------


class Contended(LedgerApplication):
    """This server's app: just before it saves, another server (``other``, over the same
    store) commits a 0.01 refund on the same order, ``interfere`` times: a real conflict,
    answered ABORTED once a request met MAX_CONFLICT_ATTEMPTS of them. Records the
    idempotency keys of the refunds it was given and what each attempt gave."""

    name = "Ledger"  # the same application, hence the same tables
    other: LedgerApplication
    interfere = 0
    tried: list[tuple[str, str]]

    def run_batch(self, items: Any) -> Any:
        results = super().run_batch(items)
        for (_, command), result in zip(items, results, strict=True):
            if isinstance(command, c.RefundOrder) and command.refund_id == "r":
                self.tried.append((command.idempotency_key, type(result).__name__))
        return results

    def save_staged(self, aggregates: Any, *rest: Any) -> Any:
        if self.interfere > 0:
            self.interfere -= 1
            n = self.interfere
            run(
                self.other,
                c.RefundOrder(f"x{n}", "O1", f"x{n}", (c.RefundLineRequest(1, 1),), "meanwhile"),
            )
        return super().save_staged(aggregates, *rest)


@pytest.fixture
def contended(store_url: str, clock: Clock, tmp_path: Path) -> Iterator[tuple[str, Contended]]:
    keys = Keys()
    app = build_application(store_url, clock, app_class=Contended)
    assert isinstance(app, Contended)
    app.other, app.tried = build_application(store_url, clock), []
    settings = Settings(
        database_url=store_url,
        listen="127.0.0.1:0",
        audit_key_file=str(tmp_path / "audit-signing-key.pem"),
    )
    try:
        with ServerThread(LedgerServer(settings, keys.ring(), clock=clock, app=app)) as thread:
            yield thread.target, app
    finally:
        app.other.close()
        app.close()


def test_an_aborted_write_is_retried_with_its_key_and_recorded_once(
    contended: tuple[str, Contended],
) -> None:
    target, app = contended
    with Ledger(target, Keys().shop_a, retry=RetryPolicy(attempts=3, initial=0.01)) as shop:
        sell(shop, "O1")
        app.interfere = MAX_CONFLICT_ATTEMPTS  # the first attempt meets a write every time
        refund = shop.storefront.refund_order(
            "O1", refund_id="r", lines={1: Decimal("0.10")}, currency="CNY"
        )
    assert app.interfere == 0
    [(first_key, first), (second_key, second)] = app.tried
    assert (first, second) == (Conflict.__name__, "Outcome")  # ABORTED, then written
    assert first_key == second_key  # one logical write, one key
    assert not refund.receipt.replayed
    order = app.order(SHOP, "O1")
    assert list(order.refunds).count("r") == 1
    assert order.refunded == MAX_CONFLICT_ATTEMPTS + 10  # the others' 0.01s and ours, once


def test_without_retries_the_same_conflict_is_aborted(contended: tuple[str, Contended]) -> None:
    """The server really answers ABORTED (what the test above retried), writing nothing."""
    target, app = contended
    with Ledger(target, Keys().shop_a, retry=RetryPolicy(attempts=1)) as shop:
        sell(shop, "O1")
        app.interfere = MAX_CONFLICT_ATTEMPTS
        with pytest.raises(grpc.RpcError) as raised:
            shop.storefront.refund_order(
                "O1", refund_id="r", lines={1: Decimal("0.10")}, currency="CNY"
            )
    assert raised.value.code() == grpc.StatusCode.ABORTED  # type: ignore[attr-defined]
    assert "r" not in app.order(SHOP, "O1").refunds


# --- UNAVAILABLE retried, INVALID_ARGUMENT not -------------------------------------------


class DropsFirstConnections(TcpProxy):
    """A proxy to the server that closes its first ``drops`` connections as soon as they
    are made (a server restarting, a load balancer without a backend): UNAVAILABLE."""

    def __init__(self, upstream: tuple[str, int], drops: int) -> None:
        self.drops, self.connections = drops, 0
        super().__init__(upstream)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self.connections += 1
            if self.connections > self.drops:
                break
            with suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()
        # From here on a plain proxy: hand this connection and the next ones on.
        self._forward(client)
        super()._accept(listener)

    def _forward(self, client: socket.socket) -> None:
        server = socket.create_connection(self.upstream)
        with self._lock:
            self._sockets.update((client, server))
        for src, dst in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()


def test_unavailable_is_retried(running: Running) -> None:
    host, port = running.target.rsplit(":", 1)
    proxy = DropsFirstConnections((host, int(port)), drops=1)
    retry = RetryPolicy(attempts=30, initial=0.2, maximum=0.5)  # past gRPC's reconnect wait
    try:
        with Ledger(proxy.address, running.keys.shop_a, retry=retry, deadline=60) as shop:
            answer = shop.storefront.EnrollReseller(
                storefront_pb2.EnrollResellerRequest(reseller_id="alice", without_sponsor=True)
            )
    finally:
        proxy.close()
    assert proxy.connections >= 2  # the first was dropped, a retry got through
    assert not answer.receipt.replayed
    with running.client(running.keys.shop_a) as bare:
        member = bare.report.GetTeamMember(
            report_pb2.GetTeamMemberRequest(
                reseller_id="alice", min_log_position=answer.receipt.log_position
            )
        )
    assert member.member.reseller_id == "alice"


def test_invalid_argument_is_answered_once_and_not_retried(metered: tuple[Running, str]) -> None:
    running, address = metered
    before = scrape(address)
    with (
        Ledger(
            running.target, running.keys.shop_a, retry=RetryPolicy(attempts=5, initial=0.01)
        ) as shop,
        pytest.raises(grpc.RpcError) as raised,
    ):
        shop.storefront.place_order(
            "O1",
            customer_id="c1",
            currency="CNY",
            lines=[Line("tea", 0, Decimal("1.00"), Decimal("0.50"), "S1")],
        )  # zero quantity
    after = scrape(address)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert (
        moved(
            before,
            after,
            "ledger_requests_total",
            service="StorefrontService",
            method="PlaceOrder",
            code="INVALID_ARGUMENT",
        )
        == 1
    )  # one attempt, no retry


# --- keys, deadlines, read-your-writes, every service -------------------------------------


def test_a_write_gets_a_key_and_reads_see_the_last_write(running: Running) -> None:
    with Ledger(running.target, running.keys.shop_a) as shop:
        sell(shop, "O1")  # no key given anywhere: the SDK made one per write
        position = shop.session.last_position
        assert position > 0
        # The read waits for the write (min_log_position = the last receipt's position).
        [supplier] = shop.report.balances("supplier:S1")
        answer = shop.report.GetBalance(report_pb2.GetBalanceRequest(account="supplier:S1"))
    assert answer.log_position >= position
    assert (supplier.currency, supplier.frozen, supplier.available) == (
        "CNY",
        Decimal("60.00"),
        Decimal("0.00"),
    )


def test_a_given_key_is_kept_so_a_resent_write_is_a_replay(running: Running) -> None:
    with Ledger(running.target, running.keys.shop_a) as shop:
        first = shop.storefront.place_order(
            "O1", customer_id="c1", currency="CNY", lines=TEA, idempotency_key="place-O1"
        )
        again = shop.storefront.place_order(
            "O1", customer_id="c1", currency="CNY", lines=TEA, idempotency_key="place-O1"
        )
    assert not first.receipt.replayed and again.receipt.replayed
    assert again.receipt.log_position == first.receipt.log_position


def test_the_default_deadline_ends_a_call_nobody_answers() -> None:
    """A peer that takes the connection and never speaks: without a deadline the call
    would wait for ever; the client's default one ends it (DEADLINE_EXCEEDED, not retried)."""
    silent = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(silent.accept()[0]), daemon=True).start()
    try:
        with (
            Ledger(f"127.0.0.1:{silent.getsockname()[1]}", "k", deadline=0.5) as ledger,
            pytest.raises(grpc.RpcError) as raised,
        ):
            ledger.report.GetProjectionStatus(report_pb2.GetProjectionStatusRequest())
    finally:
        for sock in (*held, silent):
            sock.close()
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("stub", "service"),
    [
        (storefront_pb2_grpc.StorefrontServiceStub, "storefront"),
        (admin_pb2_grpc.AdminServiceStub, "admin"),
        (finance_pb2_grpc.FinanceServiceStub, "finance"),
        (report_pb2_grpc.ReportServiceStub, "report"),
        (audit_pb2_grpc.AuditServiceStub, "audit"),
    ],
)
def test_both_clients_have_every_method_of_every_service(stub: Any, service: str) -> None:
    descriptor = stub.__module__.replace("_grpc", "")
    methods = [
        m.name
        for s in sys.modules[descriptor].DESCRIPTOR.services_by_name.values()
        for m in s.methods
    ]
    sync = getattr(Ledger("127.0.0.1:1", "k"), service)
    assert all(callable(getattr(sync, m)) for m in methods)

    async def check() -> None:
        async with AsyncLedger("127.0.0.1:1", "k") as ledger:
            assert all(callable(getattr(getattr(ledger, service), m)) for m in methods)

    asyncio.run(check())


def test_the_async_client_against_a_real_server(running: Running) -> None:
    async def story() -> tuple[Any, ...]:
        async with AsyncLedger(running.target, running.keys.shop_a) as shop:
            sf = shop.storefront
            await sf.place_order("O1", customer_id="c1", currency="CNY", lines=TEA)
            await sf.pay_order("O1", payment_id="pay-1", amount=Decimal("99.99"), currency="CNY")
            refunded = await sf.refund_order(
                "O1", refund_id="r1", lines={1: "33.33"}, currency="CNY"
            )
            balances = await shop.report.balances("supplier:S1")
            with pytest.raises(grpc.RpcError) as raised:  # not retried, raised as is
                await sf.pay_order("nope", payment_id="p", amount=1, currency="CNY")
            return refunded, balances, raised.value.code()  # type: ignore[attr-defined]

    refunded, [supplier], code = asyncio.run(story())
    assert refunded.order.refunded == 3333
    assert supplier.frozen == Decimal("40.00")  # 60.00 less the refunded unit's 20.00
    assert code == grpc.StatusCode.NOT_FOUND


# --- amounts at the edge ------------------------------------------------------------------


def test_amounts_in_the_currency_unit_both_ways() -> None:
    assert to_minor(Decimal("15.99"), "CNY") == 1599
    assert to_minor("0.01", "CNY") == 1
    assert to_minor(Decimal("15.990"), "CNY") == 1599  # trailing zeros are no precision
    assert to_minor(Decimal("500"), "JPY") == 500  # JPY has no minor unit (exponent 0)
    assert to_minor(Decimal("1E+3"), "JPY") == 1000
    assert to_minor(Decimal("1.234"), "KWD") == 1234  # three digits
    assert to_decimal(1599, "CNY") == Decimal("15.99") and str(to_decimal(1599, "CNY")) == "15.99"
    assert str(to_decimal(500, "JPY")) == "500"
    assert str(to_decimal(-5, "CNY")) == "-0.05" and str(to_decimal(0, "CNY")) == "0.00"
    assert format_amount(6000, "CNY") == "60.00"


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("15.999", "CNY"), (Decimal("0.001"), "CNY"), ("1.5", "JPY"), (Decimal("0.1"), "JPY")],
)
def test_sub_unit_precision_is_refused(amount: Any, currency: str) -> None:
    with pytest.raises(SubunitAmountError, match=currency):
        to_minor(amount, currency)


@pytest.mark.parametrize("amount", [1.5, float("nan"), "NaN", "Infinity", "abc", True])
def test_what_is_no_amount_is_refused(amount: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        to_minor(amount, "CNY")


@given(
    minor=st.integers(min_value=-(10**13), max_value=10**13),
    currency=st.sampled_from(["CNY", "JPY", "KWD", "USD"]),
)
def test_minor_units_survive_the_round_trip(minor: int, currency: str) -> None:
    assert to_minor(to_decimal(minor, currency), currency) == minor
    assert to_minor(format_amount(minor, currency), currency) == minor


def test_sub_unit_precision_is_refused_before_anything_is_sent(running: Running) -> None:
    with Ledger(running.target, running.keys.shop_a) as shop, pytest.raises(SubunitAmountError):
        shop.storefront.place_order(
            "O1",
            customer_id="c1",
            currency="JPY",
            lines=[Line("tea", 1, Decimal("100.5"), Decimal("50"), "S1")],
        )
    assert shop.session.last_position == 0  # nothing was written


def test_the_sdk_is_typed_against_the_committed_stubs(tmp_path: Path) -> None:
    """mypy over ledger.clients (pyproject's [tool.mypy]), with the mypy-protobuf stubs of
    ledger/v1. mypy cannot follow setup.py's mapping of clients/ to ledger.clients, so it
    reads a tree of links laid out as installed."""
    tree = tmp_path / "ledger"
    tree.mkdir()
    for entry in (ROOT / "ledger").iterdir():
        (tree / entry.name).symlink_to(entry)
    for mapped in ("clients", "projections"):
        (tree / mapped).symlink_to(ROOT / mapped)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--no-incremental",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "-p",
            "ledger.clients",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def readme_sdk_example() -> str:
    """The README's SDK example: the python block after its 'sdk-example' marker."""
    text = (ROOT / "README.md").read_text()
    after = text.split("<!-- sdk-example", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_sdk_example_runs_as_printed(running: Running) -> None:
    snippet = readme_sdk_example()
    assert len([line for line in snippet.splitlines() if line.strip()]) < 15
    done = subprocess.run(
        [sys.executable, "-c", snippet],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "LEDGER_ADDRESS": running.target,
            "LEDGER_API_KEY": running.keys.shop_a,
            "PATH": "/usr/bin:/bin",
        },
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "supplier S2 is owed 40.00 CNY\n"
