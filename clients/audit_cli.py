"""`ledger audit …`: what an auditor runs, with nothing but an export file and the platform's
published public key(s): no database, no server.

    ledger audit keygen --file audit-signing-key.pem    # a signing key; prints its public half
    ledger audit public-key --file audit-signing-key.pem
    ledger audit verify acme.audit.jsonl --key <published public key>
    ledger audit replay acme.audit.jsonl [--json]

Exit codes: 0 everything holds; 1 verify found a problem or replay a difference (the first
is named: its entry's seq and what differs); 2 the file is not an export, or an argument or
key file cannot be used.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from ledger.audit.export_file import NotAnExport, read_export
from ledger.audit.replay import NotReplayable, ReplayReport, replay
from ledger.audit.signing import KeyFileError, Signer, key_id, parse_public_key
from ledger.audit.verify import Report, verify, when

MAX_LISTED = 20  # problems listed after the first; the rest are counted
BUCKETS = ("frozen", "available", "in_flight", "paid_out", "clearing")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="audit_command", required=True)
    keygen = sub.add_parser("keygen", help="make a signing key file (Ed25519, PEM); prints its "
                                           "key id and public key, never the private key")
    keygen.add_argument("--file", required=True, type=Path,
                        help="where to write it (an existing file is never overwritten)")
    public = sub.add_parser("public-key", help="the key id and public key of a key file")
    public.add_argument("--file", required=True, type=Path)
    check = sub.add_parser("verify", help="check an export: every leaf, root, signature and "
                                          "consistency; names the first entry that differs")
    check.add_argument("file", type=Path, help="the export (JSON Lines)")
    check.add_argument("--key", action="append", default=[], metavar="KEY",
                       help="a published public key (base64 or hex, or a file holding it); "
                            "repeat for several. Without: the file's own keys")
    again = sub.add_parser("replay", help="recompute every balance from the postings and "
                                          "compare every closed day's statement")
    again.add_argument("file", type=Path, help="the export (JSON Lines)")
    again.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    try:
        if args.audit_command == "keygen":
            signer = Signer.generate()
            signer.save(args.file)
            print_key(signer.public_key, file=str(args.file))
            return 0
        if args.audit_command == "public-key":
            print_key(Signer.load(args.file).public_key, file=str(args.file))
            return 0
        if args.audit_command == "verify":
            trusted = trusted_keys(args.key) if args.key else None
            report = verify(read_export(args.file), trusted)
            print_report(report)
            return 0 if report.ok else 1
        replayed = replay(read_export(args.file))
        if args.json:
            print(json.dumps(replay_json(replayed), indent=1, ensure_ascii=False))
        else:
            print_replay(replayed)
        return 0 if replayed.ok else 1
    except NotAnExport as error:
        said = f"{args.file} is not an export: {error}" if error.line else str(error)
        print(f"ledger audit: {said}", file=sys.stderr)
    except NotReplayable as error:
        print(f"ledger audit: {args.file}: {error} (run `ledger audit verify` on it)",
              file=sys.stderr)
    except KeyFileError as error:
        print(f"ledger audit: {error}", file=sys.stderr)
    return 2


def print_key(public_key: bytes, **extra: str) -> None:
    print(json.dumps({"key_id": key_id(public_key), "algorithm": "ed25519",
                      "public_key": base64.b64encode(public_key).decode(), **extra}))


def trusted_keys(given: list[str]) -> dict[str, bytes]:
    """Each --key: a key itself, or a file that holds one."""
    keys = {}
    for value in given:
        path = Path(value)
        try:
            text = path.read_text() if path.is_file() else value
        except (OSError, UnicodeDecodeError) as error:
            raise KeyFileError(f"--key {value}: {error}") from None
        try:
            raw = parse_public_key(text)
        except KeyFileError as error:
            raise KeyFileError(f"--key {value if path.is_file() else '…'}: {error}") from None
        keys[key_id(raw)] = raw
    return keys


def print_report(report: Report) -> None:
    """The verdict first (the first problem named), then what else was found, what the
    keys prove, and which entries the signed heads cover."""
    print(f"{report.platform}: {report.entries} entries, {report.heads} heads")
    keys = ", ".join(report.trusted) or "none"
    if report.keys_given:
        print(f"keys: the {len(report.trusted)} given with --key ({keys})")
    else:
        print(f"keys: the file's own ({keys}); they show the file agrees with itself, not who "
              "signed it: pass the platform's published keys with --key")
    if report.ok:
        print("verified: every leaf recomputed; every head's signature, root and consistency "
              "with the head before it hold")
    else:
        first, *rest = report.problems
        print(f"FAILED: {first.message}")
        if rest:
            print(f"{len(rest)} more problem(s):")
            for problem in rest[:MAX_LISTED]:
                print(f"  - {problem.message}")
            if len(rest) > MAX_LISTED:
                print(f"  … and {len(rest) - MAX_LISTED} more")
    for note in report.notes:
        print(f"note: {note}")
    head = report.verified_head
    if head is not None:
        reason = f", {head.reason!r}" if head.reason else ""
        print(f"entries 0..{head.tree_size - 1} are under the signed head of size "
              f"{head.tree_size} (root {head.root.hex()}, signed {when(head.timestamp_us)} by "
              f"{head.key_id}{reason})")


def balance_rows(report: ReplayReport) -> Iterator[tuple[str, str, dict[str, int]]]:
    """(account, currency, balance by bucket), one per account and currency."""
    rows: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for (account, currency, bucket), amount in report.balances.items():
        rows[(account, currency)][bucket] = amount
    for (account, currency), buckets in sorted(rows.items()):
        yield account, currency, buckets


def print_replay(report: ReplayReport) -> None:
    print(f"{report.platform}: {report.entries} entries, {report.money_events} with postings, "
          f"{len(report.days)} closed day(s) compared")
    if report.differences:
        print(f"DIFFERENCES ({len(report.differences)}):")
        for difference in report.differences:
            print(f"  {difference.message}")
    rows = list(balance_rows(report))
    buckets = [*BUCKETS, *sorted({b for _, _, found in rows for b in found} - set(BUCKETS))]
    width = max([len("account"), *(len(account) for account, _, _ in rows)])
    print("\nbalances from the postings (minor units: fen for CNY)")
    print(f"{'account':{width}}  currency " + " ".join(f"{b:>12}" for b in buckets))
    for account, currency, found in rows:
        print(f"{account:{width}}  {currency:8} "
              + " ".join(f"{found.get(b, 0):>12}" for b in buckets))
    if report.ok:
        print("\nreplayed: every event's postings sum to zero; every closed day's statement "
              "equals the replay")


def replay_json(report: ReplayReport) -> dict[str, object]:
    return {
        "platform": report.platform, "entries": report.entries,
        "money_events": report.money_events, "ok": report.ok,
        "days": [{"day": d.day, "entry": d.seq, "lines": d.lines,
                  "differences": d.differences} for d in report.days],
        "differences": [{"entry": d.seq, "day": d.day, "message": d.message}
                        for d in report.differences],
        "balances": [{"account": account, "currency": currency, "bucket": bucket,
                      "amount": amount}
                     for (account, currency, bucket), amount in report.balances.items()],
    }
