"""`ledger audit …`: what an auditor runs, with nothing but an export file and the platform's
published public key(s): no database, no server.

    ledger audit keygen --file audit-signing-key.pem    # a signing key; prints its public half
    ledger audit public-key --file audit-signing-key.pem
    ledger audit verify acme.audit.jsonl --key <published public key>
    ledger audit replay acme.audit.jsonl [--json]

and, against a running server with an auditor key (--address/--api-key, or LEDGER_ADDRESS
and LEDGER_AUDITOR_KEY):

    ledger audit export acme.audit.jsonl        # the platform's history, heads and keys
    ledger audit verify --live --key <published public key>
    ledger audit replay --live                  # and compared with ReportService's balances
    ledger audit prove --seq 41                 # an entry is in the signed tree
    ledger audit prove --since 1200:<root hex>  # the signed tree extends one you kept

Exit codes: 0 everything holds; 1 verify found a problem or replay a difference (the first
is named: its entry's seq and what differs); 2 the file is not an export, or an argument or
key file cannot be used.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

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
    public.add_argument("--file", required=True, type=Path,
                        help="the signing key file (PEM) to read")
    check = sub.add_parser("verify", help="check an export: every leaf, root, signature and "
                                          "consistency; names the first entry that differs")
    check.add_argument("file", type=Path, nargs="?", help="the export (JSON Lines)")
    live_options(check)
    check.add_argument("--key", action="append", default=[], metavar="KEY",
                       help="a published public key (base64 or hex, or a file holding it); "
                            "repeat for several. Without: the file's own keys")
    again = sub.add_parser("replay", help="recompute every balance from the postings and "
                                          "compare every closed day's statement")
    again.add_argument("file", type=Path, nargs="?", help="the export (JSON Lines)")
    again.add_argument("--json", action="store_true", help="machine-readable output")
    live_options(again)
    export = sub.add_parser("export", help="write a running server's history of the key's "
                                           "platform to a file, under a head signed now")
    export.add_argument("file", type=Path, help="where to write it (JSON Lines)")
    server_options(export)
    prove = sub.add_parser("prove", help="check a proof against a head signed now: an entry "
                                         "is in the tree, or the tree extends one you kept")
    which = prove.add_mutually_exclusive_group(required=True)
    which.add_argument("--seq", type=int, help="the entry to prove included")
    which.add_argument("--since", metavar="SIZE:ROOT",
                       help="a tree you kept (its size and root in hex) to prove extended")
    prove.add_argument("--key", action="append", default=[], metavar="KEY",
                       help="a published public key (base64 or hex, or a file); repeat for "
                            "several. Without: the server's own, which proves less")
    server_options(prove)


def server_options(parser: argparse.ArgumentParser) -> None:
    from ledger.clients.sdk import add_connection_options

    parser.add_argument("--address", default=os.environ.get("LEDGER_ADDRESS",
                                                            "127.0.0.1:50051"),
                        help="the server (or LEDGER_ADDRESS)")
    parser.add_argument("--api-key", default=os.environ.get("LEDGER_AUDITOR_KEY", ""),
                        help="an auditor (or finance) API key (or LEDGER_AUDITOR_KEY)")
    add_connection_options(parser)


def live_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--live", action="store_true",
                        help="read the history from a running server instead of a file")
    server_options(parser)


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
        if args.audit_command in ("export", "prove") or getattr(args, "live", False):
            return run_live(args)
        if args.file is None:
            print(f"ledger audit {args.audit_command}: give an export file, or --live",
                  file=sys.stderr)
            return 2
        if args.audit_command == "verify":
            trusted = trusted_keys(args.key) if args.key else None
            report = verify(read_export(args.file), trusted)
            print_report(report)
            return 0 if report.ok else 1
        return show_replay(replay(read_export(args.file)), args.json)
    except NotAnExport as error:
        said = f"{args.file} is not an export: {error}" if error.line else str(error)
        print(f"ledger audit: {said}", file=sys.stderr)
    except NotReplayable as error:
        print(f"ledger audit: {args.file}: {error} (run `ledger audit verify` on it)",
              file=sys.stderr)
    except KeyFileError as error:
        print(f"ledger audit: {error}", file=sys.stderr)
    return 2


def show_replay(replayed: ReplayReport, as_json: bool, live: list[str] | None = None) -> int:
    if as_json:
        print(json.dumps({**replay_json(replayed), "live_differences": live or []}, indent=1,
                         ensure_ascii=False))
    else:
        print_replay(replayed)
        for line in live or ():
            print(f"  {line}")
    return 0 if replayed.ok and not live else 1


def run_live(args: argparse.Namespace) -> int:
    """The commands that talk to a running server."""
    from ledger.clients.audit_live import AuditClient, ProofFailed, rpc_problem
    from ledger.clients.sdk import LedgerClient, tls_from_args

    if not args.api_key:
        print("ledger audit: an auditor key is needed (--api-key or LEDGER_AUDITOR_KEY)",
              file=sys.stderr)
        return 2
    with LedgerClient(args.address, args.api_key, tls=tls_from_args(args)) as client:
        audit = AuditClient(client)
        try:
            if args.audit_command == "export":
                snap = audit.export(args.file)
                print(f"{snap.platform}: {snap.head.tree_size} entries and {len(snap.heads)} "
                      f"signed heads written to {args.file}, under the head signed now (root "
                      f"{snap.head.root.hex()}, key {snap.head.key_id})")
                return 0
            given = getattr(args, "key", [])  # replay takes no public keys
            keys = trusted_keys(given) if given else None
            if args.audit_command == "prove":
                return prove(audit, args, keys)
            if args.audit_command == "verify":
                report = verify(audit.records(), keys)
                print_report(report)
                return 0 if report.ok else 1
            replayed = replay(audit.records())
            return show_replay(replayed, args.json, compare_live(client, replayed))
        except ProofFailed as error:
            print(f"FAILED: {error}")
            return 1
        except grpc.RpcError as error:
            print(f"ledger audit: the server at {args.address} answered {rpc_problem(error)}",
                  file=sys.stderr)
            return 2


def prove(audit: Any, args: argparse.Namespace, keys: dict[str, bytes] | None) -> int:
    trusted = keys if keys is not None else audit.snapshot().keys
    if args.seq is not None:
        print(f"proved: {audit.prove_inclusion(args.seq, trusted)}")
        return 0
    size, _, root = args.since.partition(":")
    try:
        first_size, first_root = int(size), bytes.fromhex(root)
    except ValueError:
        print("ledger audit prove: --since takes SIZE:ROOT (the root in hex)", file=sys.stderr)
        return 2
    print(f"proved: {audit.prove_consistency(first_size, first_root, trusted)}")
    return 0


def compare_live(client: Any, replayed: ReplayReport) -> list[str]:
    """Every difference between the replay's balances and ReportService's (read once the
    read models hold every replayed entry)."""
    from ledger.v1 import report_pb2

    served: dict[tuple[str, str, str], int] = {}
    token = ""
    while True:
        page = client.report.ListBalances(report_pb2.ListBalancesRequest(
            page_size=1000, page_token=token, min_log_position=replayed.last_position),
            timeout=60)
        for b in page.balances:
            for bucket, amount in (("frozen", b.frozen), ("available", b.available - b.debt),
                                   ("in_flight", b.in_flight), ("paid_out", b.paid_out),
                                   ("clearing", b.clearing)):
                if amount:
                    served[(b.account, b.currency, bucket)] = amount
        token = page.next_page_token
        if not token:
            break
    mine = {k: v for k, v in replayed.balances.items() if v}
    return [f"{account} {currency} {bucket}: replay {mine.get(key, 0)}, ReportService "
            f"{served.get(key, 0)}"
            for key in sorted(set(mine) | set(served)) if mine.get(key, 0) != served.get(key, 0)
            for account, currency, bucket in (key,)]


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
