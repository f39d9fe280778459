"""Reconciliation at the domain level: the rail's bills as WeChat Pay and a plain CSV write
them (samples in tests/bills, written by hand), and the pure matching of bill lines against
the ledger's records, each kind of break, timing differences across two days, a payout paid
in parts, and 1,000 random days generated from the ledger's records and then perturbed."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.bills import CSV, WECHAT, bill_digest, parse_bill, yuan_to_fen
from ledger.domain.errors import InvalidInput
from ledger.domain.reconciliation import (
    AMOUNT_DIFFERS,
    FAILED,
    NOT_IN_BILL,
    NOT_IN_LEDGER,
    PAYMENT,
    PAYOUT,
    PENDING,
    REFUND,
    STATE_DIFFERS,
    SUCCESS,
    TRADE,
    TRANSFER,
    BillLine,
    LedgerRecord,
    reconcile,
)

BILLS = Path(__file__).parents[1] / "bills"
DAY = "2026-11-30"
NEXT = "2026-12-01"
BEFORE = "2026-11-29"


def sample(name: str) -> bytes:
    return (BILLS / name).read_bytes()


def pay(ref: str, amount: int, day: str = DAY, state: str = SUCCESS) -> LedgerRecord:
    return LedgerRecord(day, PAYMENT, ref, amount, "CNY", state)


def line(
    ref: str, amount: int, day: str = DAY, state: str = SUCCESS, kind: str = PAYMENT
) -> BillLine:
    return BillLine(day, kind, ref, f"rail-{ref}", amount, "CNY", state)


def kinds(result) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {b.ref: b.type for b in result.breaks}


# --- the formats -----------------------------------------------------------------------------


def test_wechat_trade_bill_reads_payments_and_refunds_in_fen() -> None:
    lines = parse_bill(sample("wechat_trade_2026-11-30.csv"), fmt=WECHAT, kind=TRADE, day=DAY)
    assert [(x.kind, x.ref, x.rail_ref, x.amount, x.currency, x.state) for x in lines] == [
        (PAYMENT, "pay-O1", "4200002611202611301234567890", 9999, "CNY", SUCCESS),
        (PAYMENT, "pay-O2", "4200002611202611301234567891", 2500, "CNY", SUCCESS),
        (REFUND, "refund-O1-1", "50300208012026113012345678901", 3333, "CNY", SUCCESS),
    ]
    assert {x.day for x in lines} == {DAY}
    assert lines[0].at == "2026-11-30 10:15:02"


def test_wechat_transfer_bill_reads_paid_and_expired_transfers() -> None:
    lines = parse_bill(sample("wechat_transfer_2026-11-30.csv"), fmt=WECHAT, kind=TRANSFER, day=DAY)
    assert [(x.kind, x.ref, x.amount, x.state) for x in lines] == [
        (PAYOUT, "PO1A2B3C4D5E6F7A8B9C0D1E2F3A4B5C", 15000, SUCCESS),
        (PAYOUT, "PO00000000000000000000000000000E", 2000, FAILED),
    ]


def test_plain_csv_reads_minor_units_with_or_without_its_header() -> None:
    data = sample("plain_2026-11-30.csv")
    lines = parse_bill(data, fmt=CSV, kind=TRADE, day=DAY)
    assert [(x.kind, x.ref, x.rail_ref, x.amount, x.state) for x in lines] == [
        (PAYMENT, "pay-O1", "ALI-20261130-0001", 9999, SUCCESS),
        (REFUND, "refund-O1-1", "ALI-20261130-0002", 3333, SUCCESS),
    ]
    headless = b"\n".join(data.splitlines()[1:])
    assert parse_bill(headless, fmt=CSV, kind=TRADE, day=DAY) == lines


def test_a_wechat_bill_cut_short_is_refused() -> None:
    data = sample("wechat_trade_2026-11-30.csv")
    cut = b"\n".join(data.splitlines()[:3])
    with pytest.raises(InvalidInput) as refused:
        parse_bill(cut, fmt=WECHAT, kind=TRADE, day=DAY)
    assert refused.value.reason == "BILL_UNREADABLE"
    assert "summary" in refused.value.message


def test_a_wechat_bill_whose_summary_disagrees_with_its_lines_is_refused() -> None:
    data = sample("wechat_trade_2026-11-30.csv").decode()
    lines = data.splitlines()
    dropped = "\n".join(lines[:2] + lines[3:])  # a line gone, the summary still counts 3
    with pytest.raises(InvalidInput) as refused:
        parse_bill(dropped.encode(), fmt=WECHAT, kind=TRADE, day=DAY)
    assert "counts 3 lines, the bill has 2" in refused.value.message


def test_bad_lines_are_named_by_number() -> None:
    data = b"2026-11-30,R1,pay-1,payment,12.50,CNY,success\n2026-11-30,R2,pay-2,payout,1,CNY,ok\n"
    with pytest.raises(InvalidInput) as refused:
        parse_bill(data, fmt=CSV, kind=TRADE, day=DAY)
    fields = dict(refused.value.violations)
    assert "amount" in fields["bill line 1"]
    assert "payout" in fields["bill line 2"]


def test_yuan_become_fen_exactly() -> None:
    assert [yuan_to_fen(x) for x in ("0.01", "12.3", "99.99", "100", "-1.50")] == [
        1,
        1230,
        9999,
        10000,
        -150,
    ]
    with pytest.raises(ValueError):
        yuan_to_fen("1.005")


def test_the_same_bytes_have_the_same_digest() -> None:
    data = sample("wechat_trade_2026-11-30.csv")
    assert bill_digest(data) == bill_digest(bytes(data))
    assert bill_digest(data) != bill_digest(data + b"\n")


# --- matching, each kind of break ------------------------------------------------------------


def test_the_sample_trade_bill_against_its_ledger_is_clean() -> None:
    lines = parse_bill(sample("wechat_trade_2026-11-30.csv"), fmt=WECHAT, kind=TRADE, day=DAY)
    records = [
        pay("pay-O1", 9999),
        pay("pay-O2", 2500),
        LedgerRecord(DAY, REFUND, "refund-O1-1", 3333, "CNY", SUCCESS),
    ]
    result = reconcile(DAY, records, lines)
    assert (result.matched, result.timing, result.breaks) == (3, 0, ())


def test_each_kind_of_break_with_both_sides() -> None:
    records = [pay("ok", 100), pay("amount", 200), pay("missing", 300), pay("state", 400)]
    lines = [
        line("ok", 100),
        line("amount", 250),
        line("stranger", 50),
        line("state", 400, state=FAILED),
    ]
    result = reconcile(DAY, records, lines)
    assert kinds(result) == {
        "amount": AMOUNT_DIFFERS,
        "missing": NOT_IN_BILL,
        "stranger": NOT_IN_LEDGER,
        "state": STATE_DIFFERS,
    }
    by_ref = {b.ref: b for b in result.breaks}
    assert by_ref["amount"].record == pay("amount", 200)
    assert by_ref["amount"].lines == (line("amount", 250),)
    assert by_ref["missing"].lines == ()
    assert by_ref["stranger"].record is None
    assert by_ref["amount"].break_id == "payment:amount:amount_differs"
    assert result.matched == 1


def test_the_sample_transfer_bill_shows_an_expired_transfer_in_flight_here() -> None:
    lines = parse_bill(sample("wechat_transfer_2026-11-30.csv"), fmt=WECHAT, kind=TRANSFER, day=DAY)
    paid = LedgerRecord(DAY, PAYOUT, "PO1A2B3C4D5E6F7A8B9C0D1E2F3A4B5C", 15000, "CNY", SUCCESS)
    waiting = LedgerRecord(DAY, PAYOUT, "PO00000000000000000000000000000E", 2000, "CNY", PENDING)
    result = reconcile(DAY, [paid, waiting], lines)
    assert kinds(result) == {waiting.ref: STATE_DIFFERS}
    failed_here = LedgerRecord(DAY, PAYOUT, waiting.ref, 2000, "CNY", FAILED)
    assert reconcile(DAY, [paid, failed_here], lines).breaks == ()


def test_a_line_on_the_next_days_bill_is_a_timing_difference_matched_across_two_days() -> None:
    late = pay("late", 700)
    early = pay("early", 800, day=BEFORE)  # recorded the day before, billed on this day
    lines = [line("late", 700, day=NEXT), line("early", 800)]
    result = reconcile(DAY, [late, early], lines)
    assert result.breaks == ()
    assert (result.matched, result.timing) == (1, 1)  # 'early' is the day before's match
    assert reconcile(BEFORE, [early], lines).timing == 1
    assert kinds(reconcile(DAY, [late], [])) == {"late": NOT_IN_BILL}  # until that bill comes


def test_a_line_two_days_away_is_no_timing_difference() -> None:
    far = "2026-12-02"
    result = reconcile(DAY, [pay("x", 100)], [line("x", 100, day=far)])
    assert kinds(result) == {"x": NOT_IN_BILL}
    assert kinds(reconcile(far, [pay("x", 100)], [line("x", 100, day=far)])) == {"x": NOT_IN_LEDGER}


def test_a_payout_paid_in_two_parts_matches_its_record() -> None:
    record = LedgerRecord(DAY, PAYOUT, "PO1", 10000, "CNY", SUCCESS)
    parts = [line("PO1", 6000, kind=PAYOUT), line("PO1", 4000, kind=PAYOUT, day=NEXT)]
    result = reconcile(DAY, [record], parts)
    assert (result.matched, result.timing, result.breaks) == (1, 1, ())
    short = reconcile(DAY, [record], parts[:1])
    assert kinds(short) == {"PO1": AMOUNT_DIFFERS}
    assert short.breaks[0].lines == (parts[0],)


def test_a_record_failed_here_that_the_rail_never_shows_is_no_break() -> None:
    record = LedgerRecord(DAY, PAYOUT, "PO2", 500, "CNY", FAILED)
    assert reconcile(DAY, [record], []).breaks == ()


# --- 1,000 random days -----------------------------------------------------------------------

PERTURBATIONS = ("none", "amount", "drop", "state", "late", "early")


@st.composite
def days(draw):  # type: ignore[no-untyped-def]
    """A day's records (and some of the days on either side), the bill the rail would give
    for them, each record perturbed in one way or none, and the breaks that must follow."""
    day = date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 360)))
    today = day.isoformat()
    around = ((day - timedelta(days=1)).isoformat(), today, (day + timedelta(days=1)).isoformat())
    count = draw(st.integers(0, 30))
    records, lines, expected = [], [], {}
    for i in range(count):
        kind = draw(st.sampled_from((PAYMENT, REFUND, PAYOUT)))
        on = draw(st.sampled_from(around))
        state = SUCCESS if kind != PAYOUT else draw(st.sampled_from((SUCCESS, PENDING)))
        record = LedgerRecord(
            on, kind, f"{kind[:3]}-{i}", draw(st.integers(1, 10**9)), "CNY", state
        )
        records.append(record)
        parts = draw(st.integers(1, 3)) if kind == PAYOUT else 1
        split = [record.amount // parts] * parts
        split[0] += record.amount - sum(split)
        billed = [
            BillLine(on, kind, record.ref, f"r{i}.{n}", amount, "CNY", state)
            for n, amount in enumerate(split)
        ]
        how = draw(st.sampled_from(PERTURBATIONS))
        if how == "amount":
            billed[0] = BillLine(
                on,
                kind,
                record.ref,
                billed[0].rail_ref,
                billed[0].amount + draw(st.integers(1, 1000)),
                "CNY",
                state,
            )
        elif how == "drop":
            billed = []
        elif how == "state":
            billed = [
                BillLine(
                    x.day,
                    kind,
                    x.ref,
                    x.rail_ref,
                    x.amount,
                    "CNY",
                    FAILED if state != FAILED else SUCCESS,
                )
                for x in billed
            ]
        elif how in ("late", "early"):
            moved = date.fromisoformat(on) + timedelta(days=1 if how == "late" else -1)
            billed = [
                BillLine(moved.isoformat(), kind, x.ref, x.rail_ref, x.amount, "CNY", state)
                for x in billed
            ]
        lines += billed
        if on == today and how in ("amount", "drop", "state"):
            expected[(kind, record.ref)] = {
                "amount": AMOUNT_DIFFERS,
                "drop": NOT_IN_BILL,
                "state": STATE_DIFFERS,
            }[how]
    for n in range(draw(st.integers(0, 3))):  # lines the ledger never recorded
        ref = f"stranger-{n}"
        lines.append(
            BillLine(today, PAYMENT, ref, f"x{n}", draw(st.integers(1, 10**6)), "CNY", SUCCESS)
        )
        expected[(PAYMENT, ref)] = NOT_IN_LEDGER
    order = draw(st.permutations(range(len(lines))))
    return today, records, [lines[i] for i in order], expected


@settings(max_examples=1000, deadline=None)
@given(days())
def test_every_perturbation_is_reported_as_exactly_the_break_it_is(case) -> None:  # type: ignore[no-untyped-def]
    today, records, lines, expected = case
    result = reconcile(today, records, lines)
    assert {(b.kind, b.ref): b.type for b in result.breaks} == expected
    assert len(result.breaks) == len(expected)
    own = [r for r in records if r.day == today]
    assert result.matched + sum(1 for b in result.breaks if b.record) == len(own)


@settings(max_examples=200, deadline=None)
@given(days())
def test_an_unperturbed_bill_reconciles_clean(case) -> None:  # type: ignore[no-untyped-def]
    today, records, _, _ = case
    lines = [BillLine(r.day, r.kind, r.ref, "rail", r.amount, r.currency, r.state) for r in records]
    result = reconcile(today, records, lines)
    assert result.breaks == ()
    assert result.matched == sum(1 for r in records if r.day == today)


def test_the_benchs_generated_bill_reads_and_reports_each_altered_amount() -> None:
    """bench/reconcile.py's bill is a WeChat trade bill whose every thousandth amount is off
    by a fen: exactly those are reported."""
    from bench.reconcile import DAY as BENCH_DAY
    from bench.reconcile import day_of_records, wechat_bill

    records = day_of_records(2500)
    lines = parse_bill(wechat_bill(records), fmt=WECHAT, kind=TRADE, day=BENCH_DAY)
    result = reconcile(BENCH_DAY, records, lines)
    assert {b.ref: b.type for b in result.breaks} == {
        records[n].ref: AMOUNT_DIFFERS for n in (0, 1000, 2000)
    }
    assert result.matched == 2497
