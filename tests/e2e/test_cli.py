"""The installed `ledger` command, run as a user would: demo, keys, serve, health, grpcurl."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
LEDGER = str(BIN / "ledger")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(address: str) -> None:
    """Until `ledger health` says the server at ``address`` is SERVING (10 s at most)."""
    for _ in range(100):
        if subprocess.run([LEDGER, "health", "--address", address],
                          capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    pytest.fail("the server did not become healthy")


def test_demo_prints_the_worked_example(tmp_path: Path) -> None:
    done = subprocess.run([LEDGER, "demo"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "LEDGER_DATABASE_URL": ""})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    # DOMAIN.md's worked example, in the currency's unit as DOMAIN.md gives it, every row named.
    for account, named, amount in (
            ("supplier:S1", "supplier S1, the supply price", "60.00"),
            ("reseller:carol", "Carol, the seller (level 1, 40%)", "15.99"),
            ("reseller:bob", "Bob, Carol's sponsor (level 2, 10%)", "3.99"),
            ("platform", "the platform, the rest of the margin", "20.01"),
            ("reseller:carol", "Carol, the seller (level 1, 40%)", "-5.33"),  # refund r1
            ("platform", "the platform, the rest of the margin", "-13.34")):  # refund r2
        assert re.search(rf"\n  {account} +{re.escape(named)} +frozen +{amount} CNY\n", out), (
            account, amount)
    for expected in ("Refund r1 of 33.33 CNY (one unit back)",
                     "Refund r2 of 66.66 CNY (the other two back)",
                     "postings sum to 0.00 CNY",
                     # An individual paid twice across the 36,000.00 bracket edge.
                     "payout 1 to dana: gross  40000.00, tax  810.00, net  39190.00 CNY",
                     "payout 2 to dana: gross  20000.00, tax  970.00, net  19030.00 CNY"):
        assert expected in out
    assert "\x1b[" not in out + done.stderr  # no colour codes into a file or a pipe
    assert " call " not in out  # the story, not a request log line per call
    assert (tmp_path / "ledger-data" / "demo.sqlite3").exists()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    keys_file = tmp_path / "keys.json"
    made = {}
    for name, role in (("shop-a", "storefront"), ("ops", "admin")):
        done = subprocess.run([LEDGER, "keys", "add", "--name", name, "--role", role,
                               "--platform", "acme", "--file", str(keys_file)],
                              capture_output=True, text=True, check=True)
        made[role] = json.loads(done.stdout)["key"]
    assert made["storefront"] not in keys_file.read_text()  # only hashes are stored
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "LEDGER_LISTEN": address, "LEDGER_API_KEYS_FILE": str(keys_file),
           "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}"}
    server = subprocess.Popen([LEDGER, "serve"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_healthy(address)
        yield address, made
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
        assert server.returncode == 0, output
        assert "ledger stopped" in output


def grpcurl(
    address: str, key: str, method: str, body: dict[str, object]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "grpcurl"), "-plaintext", "-H", f"authorization: Bearer {key}",
         "-d", json.dumps(body), address, method],
        capture_output=True, text=True, timeout=30,
    )


def test_serve_with_keys_answers_grpcurl_through_reflection(
    served: tuple[str, dict[str, str]],
) -> None:
    address, keys = served
    listed = subprocess.run([str(BIN / "grpcurl"), "-plaintext", address, "list"],
                            capture_output=True, text=True, timeout=30)
    assert "ledger.v1.StorefrontService" in listed.stdout, listed.stderr
    shop = keys["storefront"]
    for body in ({"idempotency_key": "e1", "reseller_id": "alice", "without_sponsor": True},
                 {"idempotency_key": "e2", "reseller_id": "bob", "sponsor_id": "alice"},
                 {"idempotency_key": "e3", "reseller_id": "carol", "sponsor_id": "bob"}):
        done = grpcurl(address, shop, "ledger.v1.StorefrontService/EnrollReseller", body)
        assert done.returncode == 0, done.stderr
    # The README's example call, as written there.
    placed = grpcurl(address, shop, "ledger.v1.StorefrontService/PlaceOrder", {
        "idempotency_key": "place-G1", "order_id": "G1", "customer_id": "c-G1",
        "reseller_id": "carol",
        "currency": "CNY", "lines": [{"sku": "tea", "category": "drinks", "quantity": 3,
                                      "unit_sale_price": 3333, "unit_supply_price": 2000,
                                      "supplier_id": "S1"}]})
    assert placed.returncode == 0, placed.stderr
    paid = grpcurl(address, shop, "ledger.v1.StorefrontService/PayOrder",
                   {"idempotency_key": "pay-G1", "order_id": "G1", "payment_id": "wx-1",
                    "amount": 9999})
    assert paid.returncode == 0, paid.stderr
    order = json.loads(paid.stdout)["order"]
    assert {s["account"]: int(s["amount"]) for s in order["shares"]} == {
        "supplier:S1": 6000, "reseller:carol": 1599, "reseller:bob": 399, "platform": 2001}
    denied = grpcurl(address, shop, "ledger.v1.AdminService/GetPlan", {})
    assert "PermissionDenied" in denied.stderr
    plan = grpcurl(address, keys["admin"], "ledger.v1.AdminService/GetPlan", {})
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["plan"]["level_rates_bps"] == [4000, 1000], plan.stdout


def test_rebuild_and_status_after_a_demo(tmp_path: Path) -> None:
    demo = subprocess.run([LEDGER, "demo"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "LEDGER_DATABASE_URL": ""})
    assert demo.returncode == 0, demo.stderr
    assert "Every account of the platform together: 0" in demo.stdout
    assert "approved and paid" in demo.stdout
    env = {**os.environ, "LEDGER_DATABASE_URL": "sqlite:///ledger-data/demo.sqlite3"}
    rebuilt = subprocess.run([LEDGER, "projections", "rebuild"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "events/s" in rebuilt.stdout  # the summary; no progress bar into a pipe
    assert "\r" not in rebuilt.stderr and "events/s" not in rebuilt.stderr
    status = subprocess.run([LEDGER, "projections", "status"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    reported = json.loads(status.stdout)
    assert reported["lag"] == 0 and reported["log_position"] > 0


def test_servers_reading_what_a_separate_projection_process_keeps(tmp_path: Path) -> None:
    """LEDGER_PROJECTIONS=external: `ledger project` keeps the read models, `serve` reads."""
    from ledger.clients.sdk import LedgerClient, idempotency_key

    from ledger.api.auth import add_key_to_file
    from ledger.v1 import report_pb2, storefront_pb2
    from tests.helpers import place, team

    keys_file = tmp_path / "keys.json"
    key = add_key_to_file(keys_file, name="shop-a", role="storefront", platform="acme")
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "LEDGER_LISTEN": address, "LEDGER_API_KEYS_FILE": str(keys_file),
           "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
           "LEDGER_PROJECTIONS": "external"}
    server = subprocess.Popen([LEDGER, "serve"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    worker = None
    try:
        wait_healthy(address)
        worker = subprocess.Popen([LEDGER, "project"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        with LedgerClient(address, key) as shop:
            team(shop)
            place(shop, "O1")
            paid = shop.storefront.PayOrder(storefront_pb2.PayOrderRequest(
                idempotency_key=idempotency_key(), order_id="O1", payment_id="w",
                amount=9999))
            got = shop.report.GetBalance(report_pb2.GetBalanceRequest(
                account="reseller:carol", min_log_position=paid.receipt.log_position),
                timeout=20)
            assert got.balances[0].frozen == 1599
    finally:
        for process in (worker, server):
            if process is not None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)


@pytest.mark.postgres
def test_several_worker_processes_share_one_port(postgres_url: str, tmp_path: Path) -> None:
    from ledger.clients.sdk import LedgerClient

    from ledger.api.auth import add_key_to_file
    from tests.helpers import enroll

    keys_file = tmp_path / "keys.json"
    key = add_key_to_file(keys_file, name="shop-a", role="storefront", platform="acme")
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "LEDGER_LISTEN": address, "LEDGER_API_KEYS_FILE": str(keys_file),
           "LEDGER_DATABASE_URL": postgres_url, "LEDGER_WORKERS": "2"}
    server = subprocess.Popen([LEDGER, "serve"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(server.stdout or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while sum("ledger serving" in line for line in list(lines)) < 2:
            assert time.monotonic() < deadline, "both workers did not start: " + "".join(lines)
            time.sleep(0.1)
        for n in range(6):  # a connection each: the kernel spreads them over the workers
            with LedgerClient(address, key) as shop:
                assert enroll(shop, f"r{n}").reseller_id == f"r{n}"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        reader.join(timeout=10)
    output = "".join(lines)
    assert server.returncode == 0, output
    assert output.count("ledger serving") == 2 and output.count("ledger stopped") == 2


def test_several_workers_need_postgres(tmp_path: Path) -> None:
    done = subprocess.run([LEDGER, "serve"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "LEDGER_WORKERS": "2",
                               "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})
    assert done.returncode == 2 and "PostgreSQL" in done.stderr


def readme_grpcurl_example(address: str) -> list[str]:
    """The README's example call ("An example call"), as printed there, to ``address``."""
    import shlex

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("### An example call", 1)[1].split("```sh\n", 1)[1].split("```")[0]
    words = shlex.split(block.replace("\\\n", " "))
    assert words[0] == ".venv/bin/grpcurl" and "127.0.0.1:50051" in words
    return [str(BIN / "grpcurl"), *(address if w == "127.0.0.1:50051" else w
                                     for w in words[1:])]


def test_the_readme_example_call_works_after_the_demo(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    demo = subprocess.Popen([LEDGER, "demo", "--keep-serving"], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "LEDGER_DATABASE_URL": "",
                                 "LEDGER_LISTEN": address})
    try:
        assert demo.stdout is not None
        shop_key = ""
        for line in demo.stdout:
            if line.startswith("Storefront key: "):
                shop_key = line.split(": ", 1)[1].strip()
            if line.startswith("Serving until Ctrl-C"):
                break
        assert shop_key, "the demo printed no storefront key"
        command = readme_grpcurl_example(address)
        command = [w.replace("$SHOP_KEY", shop_key) for w in command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        placed = json.loads(done.stdout)
        assert placed["order"]["order_id"] == "G1"
        assert placed["order"]["seller_id"] == "carol"  # the demo's Carol
    finally:
        demo.send_signal(signal.SIGINT)
        demo.communicate(timeout=30)
