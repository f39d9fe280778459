"""`ledger audit …` as an auditor runs it: the installed command, a key file, an export
file, and exit codes 0 (holds), 1 (a problem or difference, named) and 2 (not an export,
or a key that cannot be used)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from ledger.projections.reader import ReadModels
from ledger.projections.runner import ProjectionRunner

from ledger.audit.signing import Signer
from ledger.bootstrap import build_application
from tests.audit_export import export_store
from tests.conftest import Clock
from tests.e2e.test_cli import LEDGER
from tests.integration.test_audit_replay import close_day, settle_worked_example


def ledger(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LEDGER, "audit", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """DOMAIN.md's order O1 paid, completed and settled, and the day of the settlement
    closed, on SQLite; exported and signed with a key made by `ledger audit keygen`."""
    folder = tmp_path_factory.mktemp("audit")
    url = f"sqlite:///{folder / 'ledger.sqlite3'}"
    clock = Clock()
    app = build_application(url, clock)
    runner = ProjectionRunner(app, url)
    runner.setup()
    models = ReadModels(url)
    try:
        settle_worked_example(app, clock, runner, models)
        clock.advance(days=1)
        close_day(app, runner, models, "2026-11-09")
        key = folder / "keys" / "audit.pem"
        made = ledger("keygen", "--file", key)
        assert made.returncode == 0, made.stderr
        export = folder / "acme.jsonl"
        export_store(app, export, Signer.load(key), head_sizes=(10,))
        yield export, key
    finally:
        models.close()
        runner.stop()
        app.close()


def test_keygen_writes_a_key_only_its_owner_reads_and_prints_only_its_public_half(
        tmp_path: Path) -> None:
    key = tmp_path / "audit.pem"
    made = ledger("keygen", "--file", key)
    assert made.returncode == 0, made.stderr
    printed = json.loads(made.stdout)
    signer = Signer.load(key)
    assert printed == {"key_id": signer.key_id, "algorithm": "ed25519",
                       "public_key": base64.b64encode(signer.public_key).decode(),
                       "file": str(key)}
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    pem_body = "".join(key.read_text().splitlines()[1:-1])
    assert "PRIVATE" not in made.stdout + made.stderr and pem_body not in made.stdout
    assert json.loads(ledger("public-key", "--file", key).stdout) == printed
    again = ledger("keygen", "--file", key)
    assert again.returncode == 2 and "never overwritten" in again.stderr
    assert key.read_text().count("PRIVATE KEY") == 2  # the first key, untouched
    missing = ledger("public-key", "--file", tmp_path / "none.pem")
    assert missing.returncode == 2 and "none.pem" in missing.stderr


def test_verify_passes_an_untouched_export_with_the_published_key(
        exported: tuple[Path, Path], tmp_path: Path) -> None:
    export, key = exported
    public = json.loads(ledger("public-key", "--file", key).stdout)
    own = ledger("verify", export)
    assert own.returncode == 0, own.stdout + own.stderr
    assert "keys: the file's own" in own.stdout and "pass the platform's published keys" in \
        own.stdout
    assert own.stdout.splitlines()[2].startswith("verified: every leaf recomputed")
    assert own.stdout.splitlines()[3].startswith("entries 0..")
    published = tmp_path / "published.txt"
    published.write_text(public["public_key"] + "\n")
    for given in (public["public_key"], base64.b64decode(public["public_key"]).hex(),
                  str(published)):
        checked = ledger("verify", export, "--key", given)
        assert checked.returncode == 0, checked.stdout
        assert f"keys: the 1 given with --key ({public['key_id']})" in checked.stdout


def test_verify_refuses_heads_signed_by_a_key_not_published(exported: tuple[Path, Path]
                                                            ) -> None:
    export, _ = exported
    other = Signer.generate()
    refused = ledger("verify", export, "--key", base64.b64encode(other.public_key).decode())
    assert refused.returncode == 1
    assert "FAILED: head 1 (size 10, " in refused.stdout
    assert "signed by unknown key" in refused.stdout


def test_verify_names_the_altered_entry_and_exits_1(exported: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    export, _ = exported
    lines = export.read_bytes().splitlines(keepends=True)
    record = orjson.loads(lines[2 + 5])  # entry 5: the Paid event of O1
    assert record["topic"] == "ledger.domain.order:Order.Paid"
    state = base64.b64decode(record["state"]).replace(b'"reseller:carol","frozen","CNY",1599',
                                                      b'"reseller:carol","frozen","CNY",1699')
    record["state"] = base64.b64encode(state).decode()
    lines[2 + 5] = orjson.dumps(record) + b"\n"
    altered = tmp_path / "altered.jsonl"
    altered.write_bytes(b"".join(lines))
    done = ledger("verify", altered)
    assert done.returncode == 1
    assert "FAILED: entry 5 altered: its recomputed leaf hash differs from the recorded one, " \
           "which head (size 10, line" in done.stdout
    assert "topic ledger.domain.order:Order.Paid, line 8" in done.stdout
    dropped = tmp_path / "dropped.jsonl"
    dropped.write_bytes(b"".join(lines[:2 + 4] + lines[2 + 5:]))
    done = ledger("verify", dropped)
    assert done.returncode == 1 and "FAILED: entry 4 missing: seq jumps from 3 to 5" in \
        done.stdout


def test_a_file_that_is_not_an_export_or_a_key_that_is_not_one_exits_2(
        exported: tuple[Path, Path], tmp_path: Path) -> None:
    export, key = exported
    other = tmp_path / "notes.txt"
    other.write_text("hello\n")
    for command in ("verify", "replay"):
        done = ledger(command, other)
        assert done.returncode == 2
        assert f"{other} is not an export: line 1: not an export header" in done.stderr
    missing = ledger("verify", tmp_path / "none.jsonl")
    assert missing.returncode == 2 and "none.jsonl: No such file" in missing.stderr
    bad_key = ledger("verify", export, "--key", "not-a-key")
    assert bad_key.returncode == 2 and "neither base64 nor hex" in bad_key.stderr
    private = ledger("verify", export, "--key", key)
    assert private.returncode == 2 and "that is a private key" in private.stderr


def test_replay_prints_the_balances_and_compares_the_closed_day(exported: tuple[Path, Path],
                                                                tmp_path: Path) -> None:
    export, _ = exported
    done = ledger("replay", export)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "1 closed day(s) compared" in out
    assert "reseller:carol           CNY                 0         1599" in out
    assert "supplier:S1              CNY                 0         6000" in out
    assert out.splitlines()[-1].startswith("replayed: every event's postings sum to zero")
    as_json = json.loads(ledger("replay", export, "--json").stdout)
    assert as_json["ok"] and as_json["days"][0]["day"] == "2026-11-09"
    assert {"account": "reseller:bob", "currency": "CNY", "bucket": "available",
            "amount": 399} in as_json["balances"]
    # A settlement's posting edited: its postings no longer sum to zero, and the day's
    # statement no longer matches; both named, exit 1.
    lines = export.read_bytes().splitlines(keepends=True)
    for n, line in enumerate(lines):
        record = orjson.loads(line)
        if record.get("topic") == "ledger.domain.order:Order.Settled":
            state = base64.b64decode(record["state"]).replace(
                b'"reseller:bob","available","CNY",399', b'"reseller:bob","available","CNY",400')
            lines[n] = orjson.dumps({**record, "state": base64.b64encode(state).decode()}) + b"\n"
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(b"".join(lines))
    done = ledger("replay", edited)
    assert done.returncode == 1
    assert "its postings sum to 1 CNY, not zero" in done.stdout
    # The close recorded its lines that moved by their digest: the replay's differs.
    assert "2026-11-09: the digest of the lines that moved is " in done.stdout
