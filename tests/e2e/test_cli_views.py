"""The `ledger` command as a person reads it: --version, a help text for every command and
option (plain text, no RST), the settings in `serve --help`, progress only on a terminal,
`ledger team tree` and `ledger balances` against a real served ledger, amounts in the
currency's unit. The CLI runs as a subprocess, as a user runs it."""

from __future__ import annotations

import argparse
import inspect
import os
import re
import subprocess
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path

from ledger.clients.sdk import Ledger, Line

from ledger import cli, config
from ledger.config import SETTINGS_HELP, Settings
from tests.conftest import Running
from tests.e2e.test_cli import LEDGER
from tests.helpers import team

ESCAPE = "\x1b["


def ledger(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`ledger ARGS` with standard output and error into pipes (not a terminal)."""
    return subprocess.run(
        [LEDGER, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_version() -> None:
    done = ledger("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"ledger {version('s2b2c-ledger')}"


def every_parser(
    parser: argparse.ArgumentParser, path: str = "ledger"
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += every_parser(child, f"{path} {name}")
    return found


def test_every_command_and_option_has_a_plain_help_text() -> None:
    missing, markup = [], []
    for path, parser in every_parser(cli.build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                missing += [f"{path} {name}" for name in action.choices if not helps.get(name)]
            elif not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
        text = parser.format_help()
        if "``" in text or ":class:" in text or ":func:" in text:
            markup.append(path)
    assert missing == []
    assert markup == []


def test_ledger_help_names_every_command() -> None:
    done = ledger("--help")
    commands = every_parser(cli.build_parser())
    top = {path.split()[1] for path, _ in commands if len(path.split()) == 2}
    assert done.returncode == 0 and "``" not in done.stdout
    description = done.stdout.split("positional arguments")[0]
    assert all(name in description for name in top), (top, description)


def test_serve_help_lists_every_setting_with_its_default() -> None:
    done = ledger("serve", "--help")
    assert done.returncode == 0
    defaults = Settings()
    for name, field, _ in SETTINGS_HELP:
        shown = cli.setting_default(defaults, field)
        assert re.search(rf"{name}\s.*\n\s+default: {re.escape(shown)}\n", done.stdout), name
    # Every variable Settings.from_env reads is listed.
    read = set(re.findall(r'"(LEDGER_[A-Z_]+)"', inspect.getsource(config)))
    read -= {config.LIBPQ_PARAMETERS}  # the eventsourcing library's, not a setting
    unlisted = read - {name for name, _, _ in SETTINGS_HELP}
    assert not unlisted, f"add {unlisted} to ledger.config.SETTINGS_HELP (serve --help)"


def test_rebuild_writes_no_progress_into_a_pipe(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    keys = tmp_path / "keys.json"
    ledger(
        "keys",
        "add",
        "--name",
        "shop",
        "--role",
        "storefront",
        "--platform",
        "p",
        "--file",
        str(keys),
    )
    done = ledger("projections", "rebuild", env={"LEDGER_DATABASE_URL": url})
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stdout + done.stderr and ESCAPE not in done.stdout + done.stderr
    assert done.stdout.startswith("rebuilt read models from ")


def sold(running: Running) -> None:
    """DOMAIN.md's team and order O1 (3 × 33.33 through Carol), paid."""
    with Ledger(running.target, running.keys.shop_a) as shop:
        team(shop)  # type: ignore[arg-type]
        shop.storefront.place_order(
            "O1",
            customer_id="c1",
            currency="CNY",
            reseller_id="carol",
            lines=[Line("tea", 3, Decimal("33.33"), Decimal("20.00"), "S1")],
        )
        shop.storefront.pay_order("O1", payment_id="pay-1", amount=Decimal("99.99"), currency="CNY")
        shop.report.balances("reseller:carol")  # waits for the read models (read-your-writes)


def test_team_tree_draws_the_team_with_each_members_month(running: Running) -> None:
    sold(running)
    done = ledger(
        "team",
        "tree",
        "alice",
        "--month",
        "2026-11",
        "--address",
        running.target,
        "--key",
        running.keys.shop_a,
    )
    assert done.returncode == 0, done.stderr
    assert ESCAPE not in done.stdout
    lines = done.stdout.splitlines()
    assert lines[0] == "Team of alice, 2026-11"
    alice, bob, carol = lines[1], lines[2], lines[3]
    assert alice.startswith("alice ") and "team GMV 99.99 CNY" in alice
    assert "own sales 0.00 CNY" in alice and "new members 2" in alice
    assert re.match(r"^└── bob ", bob) and "team GMV 99.99 CNY" in bob
    assert re.match(r"^    └── carol ", carol)
    assert "own sales 99.99 CNY, team GMV 99.99 CNY" in carol and "new members 0" in carol


def test_balances_lists_an_account_kinds_balances_in_the_currency_unit(running: Running) -> None:
    sold(running)
    done = ledger(
        "balances", "--kind", "reseller", "--address", running.target, "--key", running.keys.shop_a
    )
    assert done.returncode == 0, done.stderr
    assert ESCAPE not in done.stdout
    rows = {
        line.split()[1]: line.split()[2:]
        for line in done.stdout.splitlines()
        if "reseller:" in line
    }
    # account → currency, frozen, available, in flight, paid out, debt (table borders aside)
    assert [c for c in rows["reseller:carol"] if c != "│"] == [
        "CNY",
        "15.99",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
    ]
    assert [c for c in rows["reseller:bob"] if c != "│"][:2] == ["CNY", "3.99"]
    assert "reseller:alice" not in rows  # nothing was ever owed to alice
    assert "Balances: reseller account (2)" in done.stdout


def test_a_reader_command_without_a_key_says_so() -> None:
    done = ledger("balances", env={"LEDGER_API_KEY": ""})
    assert done.returncode != 0
    assert "an API key is needed" in done.stderr
