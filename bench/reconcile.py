"""Reconciliation's speed: a WeChat trade bill of 100,000 lines against a day of 100,000
ledger records (issue 20: under 10 s).

    python -m bench.reconcile [--records 100000] [--database-url sqlite:///tmp/r.sqlite3]

Prints the seconds of each step: reading the bill (yuan to fen, summary checked), matching
it in memory (the pure function), and the read model's whole path as the projection
runner takes it (the day's records and the bill's lines written, the day matched from the
tables, its breaks written). One record in a thousand is perturbed, so the breaks are
written too.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ledger.projections.db import ProjectionDB
from ledger.projections.reconciliation import ReconciliationWriter
from ledger.projections.reconciliation_queries import day_reconciliation

from ledger.domain.bills import WECHAT, parse_bill
from ledger.domain.reconciliation import PAYMENT, SUCCESS, TRADE, LedgerRecord, reconcile

DAY = "2026-11-30"
TRADE_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,"
    "费率备注"
)
TRADE_SUMMARY = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)


def wechat(header: str, rows: Sequence[Sequence[str]], summary: str, totals: list[str]) -> bytes:
    """A bill file as WeChat Pay writes one: header, lines and summary values each after a
    backtick, lines ending in CR LF."""
    lines = [
        header,
        *(",".join("`" + v for v in row) for row in rows),
        summary,
        ",".join("`" + v for v in totals),
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def trade_bill(day: str, payments: Sequence[tuple[str, str]]) -> bytes:
    """A trade bill (ALL) of successful payments: (our payment id, amount in yuan)."""
    rows = [
        (
            f"{day} 10:00:00",
            "wx2421b1c4370ec43b",
            "1900000109",
            "0",
            "",
            f"4200002611{n:018d}",
            ref,
            "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
            "JSAPI",
            "SUCCESS",
            "OTHERS",
            "CNY",
            yuan,
            "0.00",
            "0",
            "0",
            "0.00",
            "0.00",
            "",
            "",
            "Tea",
            "",
            "0.00000",
            "0.60%",
            yuan,
            "0.00",
            "",
        )
        for n, (ref, yuan) in enumerate(payments)
    ]
    totals = [str(len(rows)), "0.00", "0.00", "0.00", "0.00", "0.00", "0.00"]
    return wechat(TRADE_HEADER, rows, TRADE_SUMMARY, totals)


def day_of_records(count: int, seed: int = 20) -> list[LedgerRecord]:
    rng = random.Random(seed)
    return [
        LedgerRecord(DAY, PAYMENT, f"pay-{n:08d}", rng.randint(1, 500_000), "CNY", SUCCESS)
        for n in range(count)
    ]


def wechat_bill(records: list[LedgerRecord]) -> bytes:
    """The bill WeChat would publish for the records, every thousandth amount off by 0.01."""
    payments = []
    for n, r in enumerate(records):
        fen = r.amount + (1 if n % 1000 == 0 else 0)
        payments.append((r.ref, f"{fen // 100}.{fen % 100:02d}"))
    return trade_bill(DAY, payments)


class Clock:
    """Wall and CPU seconds of each step: this machine is shared, so the CPU seconds of
    this process say what the work costs when the wall clock also counts waiting."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, float, float]] = []
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def step(self, name: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        if name:
            self.steps.append((name, wall - self._wall, cpu - self._cpu))
        self._wall, self._cpu = wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    records = day_of_records(args.records)
    data = wechat_bill(records)
    clock = Clock()
    lines = parse_bill(data, fmt=WECHAT, kind=TRADE, day=DAY)
    clock.step("read the bill (yuan to fen, summary checked)")
    result = reconcile(DAY, records, lines)
    clock.step("match in memory (the pure function)")
    print(
        f"{len(lines):,} bill lines ({len(data) / 1e6:.1f} MB) against {len(records):,} "
        f"records: {len(result.breaks)} breaks, {result.matched:,} matched"
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'reconcile.sqlite3'}"
        db = ProjectionDB(url)
        conn = db.connect()
        db.create(conn)
        clock.step("")
        with db.transaction(conn) as cur:
            writer = ReconciliationWriter(cur)
            for record in records:
                writer.recorded("bench", record, "payment")
            writer.flush()
        clock.step("read model: the day's records written (before the bill: not timed)")
        with db.transaction(conn) as cur:
            ReconciliationWriter(cur).bill_imported("bench", "digest", DAY, TRADE, lines, 1)
            state = day_reconciliation(cur, "bench", DAY)
        clock.step(f"read model: bill in, matched, breaks written ({state.open} open)")
        conn.close()
    for name, wall, cpu in clock.steps:
        print(f"{name:72} {wall:6.2f} s  (CPU {cpu:5.2f} s)")
    timed = [clock.steps[i] for i in (0, 3)]
    print(
        f"{'a bill read and matched through the read model':72} "
        f"{sum(w for _, w, _ in timed):6.2f} s  (CPU {sum(c for _, _, c in timed):5.2f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
