"""`ledger team import FILE`: a platform moving onto the ledger brings its team tree.

    ledger team import team.csv --refused refused.csv

The file is CSV (UTF-8, a byte-order mark allowed) with a header row naming the columns
``reseller``, ``sponsor``, ``rank`` and ``enrolled_at`` in any order, and optionally
``customer``; one row per member. An empty sponsor puts the member at the top of a tree; a
date is ``YYYY-MM-DD`` (the day's start) or an ISO 8601 date and time, in the platform's
time zone (LEDGER_TIMEZONE) unless it names its offset.

The rows may come in any order: they are sent sponsors first, so a platform's export needs
no sorting. A member whose sponsors loop back on themselves in the file, or who is listed
twice, is refused here and not sent; a member whose sponsor the ledger refused is refused in
turn (SPONSOR_REFUSED). The ledger keys each member's write by its reseller id, so the
import can be run again after an interruption or a fix: what was imported is answered as
already there, and nothing is written twice.

The server address and a storefront key come from --address/--key or LEDGER_ADDRESS and
LEDGER_STOREFRONT_KEY. Exit status: 0 every member imported (or already there), 1 some
refused (or the ledger stopped answering: run it again), 2 a file that cannot be read.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp
from ledger.clients import report_cli
from ledger.clients.sdk import LedgerClient, add_connection_options, tls_from_args

from ledger.domain.team import Listed, sponsor_loop, sponsors_first
from ledger.v1 import storefront_pb2

REQUIRED = ("reseller", "sponsor", "rank", "enrolled_at")
OPTIONAL = ("customer",)
CHUNK = 1000  # members per call: the most one ImportResellers message takes
CALL_TIMEOUT = 300.0  # seconds for one chunk, generous: a thousand members take about one
PROGRESS_EVERY = 5000  # members between progress lines when stderr is not a terminal
EXAMPLES = 5  # ids shown per refusal reason
SPONSOR_REFUSED = "SPONSOR_REFUSED"
LISTED_TWICE = "LISTED_TWICE"
# What a reason means for someone fixing the file, where the ledger's message says less.
HINTS = {
    "SPONSOR_NOT_FOUND": "the sponsor is neither in the ledger nor in the file",
    SPONSOR_REFUSED: "the sponsor was refused: fix it first",
    "ENROLLED_BEFORE_SPONSOR": "a member cannot join before its sponsor",
    "SPONSOR_CYCLE": "sponsors in the file loop back on themselves",
    LISTED_TWICE: "only the first row of a member is imported",
    "IDEMPOTENCY_KEY_REUSED": "imported before with another sponsor, rank or date; a "
                              "change now is an admin's (MoveReseller, SetRank)",
    "ALREADY_EXISTS": "enrolled before, not by an import with this storefront key",
}


class UnreadableFile(Exception):
    """The file is not a team CSV; the message is the one line to show."""


@dataclass(frozen=True)
class Row:
    line: int
    reseller_id: str
    sponsor_id: str
    rank: str
    enrolled_at: datetime
    customer_id: str = ""


@dataclass(frozen=True)
class Refusal:
    reseller_id: str
    line: int
    code: str  # the gRPC status code's name; empty when refused here, before sending
    reason: str
    message: str


@dataclass
class Report:
    members: int = 0
    imported: int = 0
    already: int = 0
    refusals: list[Refusal] = field(default_factory=list)


# --- reading the file ----------------------------------------------------------------------


def parse_time(text: str, zone: ZoneInfo) -> datetime:
    """A day (its first instant) or a date and time, in ``zone`` unless it names an offset."""
    at = datetime.fromisoformat(text)
    return at if at.tzinfo is not None else at.replace(tzinfo=zone)


def read_rows(path: Path, zone: ZoneInfo) -> tuple[list[Row], list[Refusal]]:
    """The file's members, and the refusals of rows that repeat a member (the first row
    stands). Anything that makes the file unreadable raises UnreadableFile naming the line."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as source:
            return _rows(csv.reader(source), path, zone)
    except OSError as error:
        raise UnreadableFile(f"{path}: cannot be read ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise UnreadableFile(f"{path}: is not UTF-8 text") from None


def _rows(reader: Any, path: Path, zone: ZoneInfo) -> tuple[list[Row], list[Refusal]]:
    """``reader``: a csv.reader, whose line_num is the line a row ends on."""
    where = 1
    try:
        header = [name.strip().lower() for name in next(reader, [])]
        columns = _columns(header, path)
        rows: list[Row] = []
        repeats: list[Refusal] = []
        first_line: dict[str, int] = {}
        for record in reader:
            where = reader.line_num
            if not any(value.strip() for value in record):
                continue  # a blank line
            if len(record) != len(header):
                raise UnreadableFile(f"{path} line {where}: {len(record)} fields, the header "
                                     f"has {len(header)}")
            value = {name: record[i].strip() for name, i in columns.items()}
            if not value["reseller"]:
                raise UnreadableFile(f"{path} line {where}: reseller is empty")
            try:
                enrolled_at = parse_time(value["enrolled_at"], zone)
            except ValueError:
                raise UnreadableFile(
                    f"{path} line {where}: enrolled_at {value['enrolled_at']!r} is not a date "
                    "(YYYY-MM-DD, or an ISO 8601 date and time)") from None
            reseller_id = value["reseller"]
            if reseller_id in first_line:
                repeats.append(Refusal(reseller_id, where, "", LISTED_TWICE,
                                       f"{reseller_id} is listed on line "
                                       f"{first_line[reseller_id]} already"))
                continue
            first_line[reseller_id] = where
            rows.append(Row(where, reseller_id, value["sponsor"], value["rank"], enrolled_at,
                            value.get("customer", "")))
    except csv.Error as error:
        raise UnreadableFile(f"{path} line {where}: {error}") from None
    return rows, repeats


def _columns(header: list[str], path: Path) -> dict[str, int]:
    if not header:
        raise UnreadableFile(f"{path}: is empty; the first line names the columns "
                             f"({','.join(REQUIRED)})")
    missing = [name for name in REQUIRED if name not in header]
    unknown = [name for name in header if name not in REQUIRED + OPTIONAL]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if missing or unknown or repeated:
        problems = ([f"missing {', '.join(missing)}"] * bool(missing)
                    + [f"unknown {', '.join(map(repr, unknown))}"] * bool(unknown)
                    + [f"repeated {', '.join(repeated)}"] * bool(repeated))
        raise UnreadableFile(f"{path}: bad header: {'; '.join(problems)} (the columns are "
                             f"{', '.join(REQUIRED)}, and optionally {', '.join(OPTIONAL)})")
    return {name: header.index(name) for name in REQUIRED + OPTIONAL if name in header}


# --- importing -----------------------------------------------------------------------------


def member(row: Row) -> storefront_pb2.ImportedReseller:
    at = Timestamp()
    at.FromDatetime(row.enrolled_at)
    return storefront_pb2.ImportedReseller(
        reseller_id=row.reseller_id, sponsor_id=row.sponsor_id, rank=row.rank,
        enrolled_at=at, customer_id=row.customer_id)


def import_rows(client: LedgerClient, rows: Sequence[Row], report: Report,
                progress: Callable[[int], None]) -> None:
    """Sends the rows sponsors first (earliest joined first where that leaves a choice, so
    the ledger records the tree in the order it grew), a call per chunk, each chunk once
    the one before is answered: every sponsor is in the ledger, or refused, before its
    members are sent. Adds what the ledger answered to ``report``; a failed call raises
    grpc.RpcError, the chunks before it counted."""
    tree = [Listed(row.reseller_id, row.sponsor_id, row.enrolled_at) for row in rows]
    ordered, looped = sponsors_first(tree)
    for i in looped:
        why = sponsor_loop(tree, i)
        report.refusals.append(Refusal(rows[i].reseller_id, rows[i].line, "", why.reason,
                                       why.message))
    refused = {r.reseller_id for r in report.refusals}
    by_id = {row.reseller_id: row for row in rows}
    done = len(looped)
    for start in range(0, len(ordered), CHUNK):
        chunk = [rows[i] for i in ordered[start:start + CHUNK]]
        reply = client.storefront.ImportResellers(
            iter([storefront_pb2.ImportResellersRequest(members=[member(r) for r in chunk])]),
            timeout=CALL_TIMEOUT)
        report.imported += reply.imported
        report.already += reply.already_imported
        refused.update(f.reseller_id for f in reply.failures)
        for failure in reply.failures:
            row = by_id[failure.reseller_id]
            if failure.reason == "SPONSOR_NOT_FOUND" and row.sponsor_id in refused:
                report.refusals.append(Refusal(
                    row.reseller_id, row.line, failure.code, SPONSOR_REFUSED,
                    f"its sponsor {row.sponsor_id} was refused"))
            else:
                report.refusals.append(Refusal(row.reseller_id, row.line, failure.code,
                                               failure.reason, failure.message))
        done += len(chunk)
        progress(done)


class Progress:
    """A bar on a terminal; elsewhere (a file, a pipe) a line every PROGRESS_EVERY members."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total = total
        self.out = out
        self.bar = out.isatty()
        self.shown = 0

    def __call__(self, done: int) -> None:
        if self.bar:
            filled = 30 * done // max(self.total, 1)
            print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done:,}/{self.total:,} members",
                  end="", file=self.out, flush=True)
        elif done // PROGRESS_EVERY > self.shown // PROGRESS_EVERY and done < self.total:
            print(f"ledger team import: {done:,} of {self.total:,} members answered",
                  file=self.out, flush=True)
        self.shown = done

    def end(self) -> None:
        if self.bar and self.shown:
            print(file=self.out, flush=True)


def summary(path: Path, report: Report) -> list[str]:
    """Counts, then each distinct refusal reason with how many and a few example ids."""
    lines = [f"{path}: {report.members:,} members",
             f"imported: {report.imported:,} ({report.already:,} of them already there)",
             f"refused: {len(report.refusals):,}"]
    by_reason: dict[str, list[Refusal]] = {}
    for refusal in report.refusals:
        by_reason.setdefault(refusal.reason, []).append(refusal)
    for reason, group in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        code = f" ({group[0].code})" if group[0].code else ""
        examples = ", ".join(r.reseller_id for r in group[:EXAMPLES])
        more = f" and {len(group) - EXAMPLES:,} more" if len(group) > EXAMPLES else ""
        hint = f": {HINTS[reason]}" if reason in HINTS else ""
        count = f"{len(group):,} member{'s' if len(group) > 1 else ''}"
        lines.append(f"  {reason}{code}{hint}: {count}, e.g. {examples}{more}")
        lines.append(f"      {group[0].reseller_id} (line {group[0].line}): {group[0].message}")
    return lines


def write_refusals(refusals: Sequence[Refusal], target: Path) -> None:
    """Every refusal, for fixing the file: UTF-8 with a byte-order mark, like finance's."""
    with target.open("w", newline="", encoding="utf-8-sig") as out:
        writer = csv.writer(out)
        writer.writerow(["line", "reseller", "code", "reason", "message"])
        for r in sorted(refusals, key=lambda r: r.line):
            writer.writerow([r.line, r.reseller_id, r.code, r.reason, r.message])


# --- the command ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="team_command", required=True)
    imports = sub.add_parser(
        "import", help="bring a team tree in from CSV (reseller, sponsor, rank, enrolled_at)")
    imports.add_argument("file", type=Path,
                         help="the CSV file: reseller, sponsor, rank, enrolled_at columns")
    imports.add_argument("--address", default=os.environ.get("LEDGER_ADDRESS",
                                                             "127.0.0.1:50051"),
                         help="the ledger's gRPC address (or LEDGER_ADDRESS)")
    imports.add_argument("--key", default=os.environ.get("LEDGER_STOREFRONT_KEY", ""),
                         help="a storefront API key (or LEDGER_STOREFRONT_KEY)")
    add_connection_options(imports)
    imports.add_argument("--refused", type=Path,
                         help="also write every refused member to this CSV file")
    report_cli.add_tree_arguments(sub.add_parser(
        "tree", help="draw a reseller's team as a tree, each member with the month's numbers"))


def run(args: argparse.Namespace, timezone: str) -> int:
    if args.team_command == "tree":
        return report_cli.run_tree(args, timezone)
    if not args.key:
        print("ledger team: a storefront key is needed (--key or LEDGER_STOREFRONT_KEY)",
              file=sys.stderr)
        return 2
    try:
        rows, repeats = read_rows(args.file, ZoneInfo(timezone))
    except UnreadableFile as error:
        print(f"ledger team import: {error}", file=sys.stderr)
        return 2
    import grpc

    report = Report(members=len(rows) + len(repeats), refusals=list(repeats))
    progress = Progress(report.members, sys.stderr)
    failed = None
    with LedgerClient(args.address, args.key, tls=tls_from_args(args)) as client:
        try:
            import_rows(client, rows, report, progress)
        except grpc.RpcError as error:
            failed = (f"ledger team import: {error.code().name}: "  # type: ignore[attr-defined]
                      f"{error.details()}; "  # type: ignore[attr-defined]
                      f"{progress.shown:,} of {report.members:,} members were answered "
                      "before; running the import again is safe")
    progress.end()
    if failed is None or progress.shown:
        print("\n".join(summary(args.file, report)))
    if args.refused is not None:
        write_refusals(report.refusals, args.refused)
    if failed is not None:
        print(failed, file=sys.stderr)
        return 1
    return 1 if report.refusals else 0
