"""The breaks' read model (projections/reconciliation.py) on SQLite and PostgreSQL, fed
directly: a break follows what changes it, in log order. The same through gRPC, with bills
imported as streams and CloseDay refusing a day with a break open, is in
tests/e2e/test_reconciliation_api.py."""

from __future__ import annotations

from ledger.projections.db import ProjectionDB
from ledger.projections.reconciliation import ReconciliationWriter
from ledger.projections.reconciliation_queries import breaks, day_reconciliation

from ledger.domain.reconciliation import PAYMENT, SUCCESS, TRADE, BillLine, LedgerRecord

DAY = "2026-11-09"


def test_the_breaks_read_model_follows_a_timing_difference_across_two_days(
    app: object, store_url: str  # the application makes the store's schema
) -> None:
    """A payment of DAY billed on the next day: a break on DAY until that bill is in, then
    resolved by it; a line on DAY's bill whose payment is recorded on the next day: a break
    until that payment is recorded. An acknowledged break found again after it was
    resolved is open again."""
    nxt = "2026-11-10"
    db = ProjectionDB(store_url)
    conn = db.connect()
    db.create(conn)

    def step(apply):  # type: ignore[no-untyped-def]
        with db.transaction(conn) as cur:
            writer = ReconciliationWriter(cur)
            apply(writer)
            writer.flush()  # as the runner does at the end of each batch
        with db.transaction(conn) as cur:
            return {
                b.break_id: (b.status, b.resolved_by) for b in breaks(cur, "acme", DAY, "", "", 100)
            }, day_reconciliation(cur, "acme", DAY)

    def record(ref: str, day: str) -> LedgerRecord:
        return LedgerRecord(day, PAYMENT, ref, 100, "CNY", SUCCESS)

    def line(ref: str, day: str) -> BillLine:
        return BillLine(day, PAYMENT, ref, f"w{ref}", 100, "CNY", SUCCESS)

    try:
        step(
            lambda w: (
                w.recorded("acme", record("late", DAY), "payment"),
                w.recorded("acme", record("on-time", DAY), "payment"),
            )
        )
        found, state = step(
            lambda w: w.bill_imported(
                "acme", "d1", DAY, TRADE, [line("on-time", DAY), line("early", DAY)], 1
            )
        )
        assert found == {
            "payment:early:not_in_ledger": ("open", ""),
            "payment:late:not_in_bill": ("open", ""),
        }
        assert state.state == "breaks_open"
        found, _ = step(lambda w: w.bill_imported("acme", "d2", nxt, TRADE, [line("late", nxt)], 2))
        assert found["payment:late:not_in_bill"] == ("resolved", "bill:d2")
        found, _ = step(lambda w: w.recorded("acme", record("early", nxt), "payment"))
        assert found["payment:early:not_in_ledger"] == ("resolved", "payment")
        found, state = step(lambda w: None)
        assert (state.state, state.matched, state.timing) == ("clean", 2, 1)
    finally:
        conn.close()
