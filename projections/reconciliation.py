"""Reconciliation's read models: the ledger's own records of what went through the rail
(payments, refunds, payouts sent), the bills' lines, and each day's breaks with their
status.

A day is matched again (the pure ``reconcile``) whenever something it depends on changes,
in log order: a bill of that day or of a day beside it is imported, or a record dated on or
beside it changes (a payout marked failed). Breaks found again keep their status; a break
no longer found is resolved, by what changed (``resolved_by``); finance's acknowledgement
is an event of its own. So the breaks are a function of the log, and a rebuild gives the
same ones.

What the API reads back (a day's state, its breaks) is in reconciliation_queries.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from ledger.projections.db import Cursor, append_rows

from ledger.domain.reconciliation import (
    ACKNOWLEDGED,
    BILL_KINDS,
    OPEN,
    PAYOUT,
    RESOLVED,
    BillLine,
    Break,
    LedgerRecord,
    bill_side,
    reconcile,
)

LINE_COLUMNS = (
    "platform",
    "digest",
    "day",
    "bill_kind",
    "kind",
    "ref",
    "rail_ref",
    "amount",
    "currency",
    "state",
    "at",
)
RECORD_COLUMNS = ("platform", "kind", "ref", "day", "amount", "currency", "state")
RECORD_KIND_TO_BILL = {kind: bill for bill, kinds in BILL_KINDS.items() for kind in kinds}


def beside(day: str) -> tuple[str, str, str]:
    d = date.fromisoformat(day)
    return (d - timedelta(days=1)).isoformat(), day, (d + timedelta(days=1)).isoformat()


class ReconciliationWriter:
    """Applies the events reconciliation is made of, on the batch's cursor. Records are
    written as they come (one insert each, only rows the matching reads)."""

    def __init__(self, cur: Cursor) -> None:
        self.cur = cur
        self._billed: dict[str, set[tuple[str, str]]] = {}  # platform → (bill kind, day)
        self._pending: list[tuple[str, str, str, str, int, str, str]] = []

    def flush(self) -> None:
        """Writes the records held back: one statement for a batch's payments, not one
        each; before any matching reads them, and at the end of the batch."""
        if self._pending:
            append_rows(self.cur, "proj_rail_records", RECORD_COLUMNS, self._pending)
            self._pending = []

    def _bills_of(self, platform: str) -> set[tuple[str, str]]:
        known = self._billed.get(platform)
        if known is None:
            self.cur.execute(
                "SELECT DISTINCT kind, day FROM proj_rail_bills WHERE platform = %s", (platform,)
            )
            known = self._billed[platform] = {(k, d) for k, d in self.cur.fetchall()}
        return known

    def recorded(self, platform: str, record: LedgerRecord, cause: str) -> None:
        """A payment, refund or payout sent to the rail (or its new state)."""
        self._pending.append(
            (
                platform,
                record.kind,
                record.ref,
                record.day,
                record.amount,
                record.currency,
                record.state,
            )
        )
        self._changed(platform, record, cause)

    def payout_state(self, platform: str, payout_id: str, state: str, cause: str) -> None:
        self.flush()
        self.cur.execute(
            "SELECT day FROM proj_rail_records WHERE platform = %s AND kind = %s AND ref = %s",
            (platform, PAYOUT, payout_id),
        )
        row = self.cur.fetchone()
        if row is None:  # never sent to the rail (rejected before approval)
            return
        self.cur.execute(
            "UPDATE proj_rail_records SET state = %s WHERE platform = %s AND "
            "kind = %s AND ref = %s",
            (state, platform, PAYOUT, payout_id),
        )
        self._changed(platform, LedgerRecord(row[0], PAYOUT, payout_id, 0, "", state), cause)

    def _changed(self, platform: str, record: LedgerRecord, cause: str) -> None:
        """Matches again the days the record can change: its own, if it has a bill, and a
        day beside it whose bill names it (a timing difference). Only a lookup by id for
        those: a day's payments come in while the day before's bill is in, and matching
        that whole day again for each would cost the day's size per payment."""
        billed = self._bills_of(platform)
        if not billed:
            return
        kind = RECORD_KIND_TO_BILL[record.kind]
        for near in beside(record.day):
            if (kind, near) not in billed:
                continue
            if near != record.day:
                self.cur.execute(
                    "SELECT 1 FROM proj_rail_lines WHERE platform = %s AND bill_kind = %s AND "
                    "day = %s AND ref = %s LIMIT 1",
                    (platform, kind, near, record.ref),
                )
                if self.cur.fetchone() is None:
                    continue
            self.match(platform, near, kind, cause)

    def bill_imported(
        self,
        platform: str,
        digest: str,
        day: str,
        kind: str,
        lines: Iterable[BillLine],
        position: int,
    ) -> None:
        lines = list(lines)
        self.cur.execute(
            "INSERT INTO proj_rail_bills (platform, digest, day, kind, lines, position) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (platform, digest, day, kind, len(lines), position),
        )
        append_rows(
            self.cur,
            "proj_rail_lines",
            LINE_COLUMNS,
            [
                (
                    platform,
                    digest,
                    x.day,
                    kind,
                    x.kind,
                    x.ref,
                    x.rail_ref,
                    x.amount,
                    x.currency,
                    x.state,
                    x.at,
                )
                for x in lines
            ],
        )
        self._bills_of(platform).add((kind, day))
        cause = f"bill:{digest[:16]}"
        for near in beside(day):
            if (kind, near) in self._billed[platform]:
                self.match(platform, near, kind, cause)

    def acknowledged(self, platform: str, day: str, break_id: str, reason: str, by: str) -> None:
        self.cur.execute(
            "UPDATE proj_breaks SET status = %s, resolved_by = %s, reason = %s, "
            "acknowledged_by = %s WHERE platform = %s AND day = %s AND break_id = %s AND "
            "status = %s",
            (ACKNOWLEDGED, "acknowledged", reason, by, platform, day, break_id, OPEN),
        )

    def match(self, platform: str, day: str, kind: str, cause: str) -> None:
        """Matches the day's records and its kind of bill again, and brings its breaks up to
        date: new ones open, gone ones resolved by ``cause``."""
        self.flush()
        days = beside(day)
        record_kinds = BILL_KINDS[kind]
        marks = ", ".join(["%s"] * len(record_kinds))
        self.cur.execute(
            "SELECT day, kind, ref, amount, currency, state FROM proj_rail_records WHERE "
            f"platform = %s AND kind IN ({marks}) AND day IN (%s, %s, %s)",
            (platform, *record_kinds, *days),
        )
        records = [LedgerRecord(*row) for row in self.cur.fetchall()]
        self.cur.execute(
            "SELECT day, kind, ref, rail_ref, amount, currency, state, at FROM proj_rail_lines "
            "WHERE platform = %s AND bill_kind = %s AND day IN (%s, %s, %s)",
            (platform, kind, *days),
        )
        lines = [BillLine(*row) for row in self.cur.fetchall()]
        result = reconcile(day, records, lines)
        self.cur.execute(
            "SELECT break_id, status FROM proj_breaks WHERE platform = %s AND "
            "day = %s AND bill_kind = %s",
            (platform, day, kind),
        )
        before = dict(self.cur.fetchall())
        found = {b.break_id: b for b in result.breaks}
        for break_id, status in before.items():
            if break_id not in found and status != RESOLVED:
                self.cur.execute(
                    "UPDATE proj_breaks SET status = %s, resolved_by = %s WHERE platform = %s "
                    "AND day = %s AND break_id = %s",
                    (RESOLVED, cause, platform, day, break_id),
                )
        for break_id, found_break in found.items():
            status = before.get(break_id)
            if status is None:
                self.cur.execute(
                    "INSERT INTO proj_breaks (platform, day, break_id, bill_kind, kind, ref, "
                    "type, status, resolved_by, reason, acknowledged_by, ledger, bill) VALUES "
                    "(%s, %s, %s, %s, %s, %s, %s, %s, '', '', '', %s, %s)",
                    (
                        platform,
                        day,
                        break_id,
                        kind,
                        found_break.kind,
                        found_break.ref,
                        found_break.type,
                        OPEN,
                        *sides(found_break),
                    ),
                )
            else:
                reopened = " , status = 'open', resolved_by = ''" if status == RESOLVED else ""
                self.cur.execute(
                    f"UPDATE proj_breaks SET ledger = %s, bill = %s{reopened} WHERE "
                    "platform = %s AND day = %s AND break_id = %s",
                    (*sides(found_break), platform, day, break_id),
                )
        self.cur.execute(
            "DELETE FROM proj_reconciled WHERE platform = %s AND day = %s AND bill_kind = %s",
            (platform, day, kind),
        )
        self.cur.execute(
            "INSERT INTO proj_reconciled (platform, day, bill_kind, matched, timing) VALUES "
            "(%s, %s, %s, %s, %s)",
            (platform, day, kind, result.matched, result.timing),
        )


def sides(found: Break) -> tuple[str, str]:
    """Both sides as text columns: ``day|amount|currency|state|rail refs`` ('' for none)."""
    record = found.record
    ledger = (
        f"{record.day}|{record.amount}|{record.currency}|{record.state}|"
        if record is not None
        else ""
    )
    bill = ""
    if found.lines:
        state, amount, currency = bill_side(found.lines)
        refs = ",".join(x.rail_ref for x in found.lines)
        bill = f"{min(x.day for x in found.lines)}|{amount}|{currency}|{state}|{refs}"
    return ledger, bill
