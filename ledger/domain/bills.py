"""The payment rail's daily bills, read into BillLines (ledger/domain/reconciliation.py).

Three formats:

- ``wechat`` trade bill (交易账单, bill_type ALL, SUCCESS or REFUND), as WeChat Pay publishes
  it: a header line of column names, one line per payment or refund with every value
  preceded by a backtick (so spreadsheets keep long numbers), then a summary header
  (总交易单数,…) and the summary line. Amounts are yuan with two decimals. A payment line
  (交易状态 SUCCESS, or REVOKED when undone after payment) is named by 商户订单号 (our payment
  id), a refund line (交易状态 REFUND) by 商户退款单号 (our refund id), in the state of 退款状态.
- ``wechat`` transfer bill (商家转账): the same file conventions over the columns of WeChat's
  transfer-bill records: 商户单号 (our payout id, out_bill_no), 微信转账单号, 转账金额(元) and
  转账状态 (SUCCESS, FAIL, CANCELLED, or a state still on the way: ACCEPTED, PROCESSING,
  WAIT_USER_CONFIRM, TRANSFERING, CANCELING), summary 总笔数,总金额(元).
- ``csv`` for any other rail: time, rail reference, our reference, kind (payment, refund,
  payout), amount in minor units, currency, state (success, failed, pending); a first line
  naming those columns is optional.

Columns are found by name, not position (WeChat says their order may change); a summary that
disagrees with the lines refuses the bill, which is how a bill cut short is caught.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Sequence

from ledger.domain.errors import InvalidInput
from ledger.domain.money import MAX_AMOUNT, is_currency
from ledger.domain.reconciliation import (
    BILL_KINDS,
    FAILED,
    PAYMENT,
    PAYOUT,
    PENDING,
    REFUND,
    STATES,
    SUCCESS,
    TRADE,
    TRANSFER,
    BillLine,
)

WECHAT = "wechat"
CSV = "csv"
FORMATS = (WECHAT, CSV)
MAX_REF_LENGTH = 128

YUAN = re.compile(r"^(-?)([0-9]{1,12})(?:\.([0-9]{1,2}))?$")

TRADE_STATES = {"SUCCESS": SUCCESS, "REVOKED": FAILED}  # a payment line's 交易状态
REFUND_STATES = {"SUCCESS": SUCCESS, "PROCESSING": PENDING}  # 退款状态; CHANGE, REFUNDCLOSE fail
TRANSFER_STATES = {"SUCCESS": SUCCESS, "FAIL": FAILED, "CANCELLED": FAILED}  # the rest pend

CSV_COLUMNS = ("time", "rail_ref", "our_ref", "kind", "amount", "currency", "state")


def bill_digest(data: bytes) -> str:
    """What recognises a bill imported again: SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


class _Problems:
    """The bill's problems, each with its line number, refused together (up to a few)."""

    LIMIT = 20

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, line_no: int, why: str) -> None:
        if len(self.found) < self.LIMIT:
            self.found.append((f"bill line {line_no}" if line_no else "bill", why))

    def check(self) -> None:
        if self.found:
            raise InvalidInput(self.found, reason="BILL_UNREADABLE")


def parse_bill(data: bytes, *, fmt: str, kind: str, day: str) -> list[BillLine]:
    """The bill's lines, each dated ``day`` (the day the bill is for). Refuses the whole
    bill (InvalidInput, reason BILL_UNREADABLE, lines named) if any part cannot be read."""
    problems = _Problems()
    if fmt not in FORMATS:
        raise InvalidInput([("format", f"must be one of {', '.join(FORMATS)}")])
    if kind not in BILL_KINDS:
        raise InvalidInput([("kind", f"must be one of {', '.join(BILL_KINDS)}")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(
            [("bill", f"is not UTF-8 text (byte {error.start})")], reason="BILL_UNREADABLE"
        ) from None
    rows = list(csv.reader(io.StringIO(text)))
    numbered = [(n, row) for n, row in enumerate(rows, start=1) if any(c.strip() for c in row)]
    if fmt == CSV:
        lines = _plain_csv(numbered, kind, day, problems)
    else:
        reader = _trade_line if kind == TRADE else _transfer_line
        lines = _wechat(numbered, kind, day, reader, problems)
    problems.check()
    return lines


def yuan_to_fen(text: str) -> int:
    """ "12.3" → 1230. Exact: no float ever holds the amount."""
    match = YUAN.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not an amount in yuan")
    sign, whole, cents = match.groups()
    fen = int(whole) * 100 + int((cents or "0").ljust(2, "0"))
    return -fen if sign else fen


# --- WeChat's bills --------------------------------------------------------------------------


class Row:
    """One line's values by column name, each read as WeChat writes it (the backtick
    before it taken off) only when asked for: a line has 27 columns, a reader needs 8."""

    __slots__ = ("columns", "values")

    def __init__(self, columns: dict[str, int], values: list[str]) -> None:
        self.columns = columns
        self.values = values

    def __getitem__(self, name: str) -> str:
        return self.values[self.columns[name]].strip().removeprefix("`")

    def get(self, name: str, default: str = "") -> str:
        return self[name] if name in self.columns else default


LineReader = Callable[[Row, str], BillLine]

SUMMARY_FIRST = ("总交易单数", "总笔数", "资金流水总笔数")


def _wechat(
    numbered: Sequence[tuple[int, list[str]]],
    kind: str,
    day: str,
    reader: LineReader,
    problems: _Problems,
) -> list[BillLine]:
    if len(numbered) < 3:
        problems.add(
            0, "a WeChat bill has a header line, its lines, a summary header and a summary line"
        )
        return []
    (_, header), *body = numbered
    header = [h.strip() for h in header]
    if header and header[0] in SUMMARY_FIRST:
        problems.add(numbered[0][0], "the bill starts with its summary: its lines are missing")
        return []
    (summary_no, summary_head), (_, summary_values) = body[-2], body[-1]
    body = body[:-2]
    if not summary_head or summary_head[0].strip() not in SUMMARY_FIRST:
        problems.add(
            summary_no,
            "the summary header (总交易单数… or 总笔数…) is missing: the bill may be cut short",
        )
        return []
    lines: list[BillLine] = []
    columns = {name: i for i, name in enumerate(header)}
    for line_no, values in body:
        if len(values) != len(header):
            problems.add(line_no, f"has {len(values)} values, the header {len(header)}")
            continue
        try:
            lines.append(reader(Row(columns, values), day))
        except (KeyError, ValueError) as error:
            problems.add(line_no, _why(error))
    summary = dict(
        zip(
            [h.strip() for h in summary_head],
            [v.strip().removeprefix("`") for v in summary_values],
            strict=False,
        )
    )
    _check_summary(summary, lines, kind, summary_no + 1, problems)
    return lines


def _why(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"the column {error.args[0]} is missing"
    return str(error)


def _check_summary(
    summary: dict[str, str], lines: list[BillLine], kind: str, line_no: int, problems: _Problems
) -> None:
    count = summary.get("总交易单数") or summary.get("总笔数")
    try:
        if count is None or int(float(count)) != len(lines):
            problems.add(line_no, f"the summary counts {count} lines, the bill has {len(lines)}")
        if kind == TRANSFER and "总金额(元)" in summary:
            total = yuan_to_fen(summary["总金额(元)"])
            if total != sum(x.amount for x in lines):
                problems.add(line_no, "the summary's 总金额(元) is not the sum of the lines")
        if kind == TRADE and "退款总金额" in summary:
            refunded = yuan_to_fen(summary["退款总金额"])
            if refunded != sum(x.amount for x in lines if x.kind == REFUND):
                problems.add(line_no, "the summary's 退款总金额 is not the sum of the refunds")
    except ValueError as error:
        problems.add(line_no, str(error))


def _ref(value: str, column: str) -> str:
    if not value or len(value) > MAX_REF_LENGTH or not value.isprintable():
        raise ValueError(f"{column} must be 1 to {MAX_REF_LENGTH} printable characters")
    return value


def _amount(value: str, column: str) -> int:
    amount = yuan_to_fen(value)
    if not 0 <= amount <= MAX_AMOUNT:
        raise ValueError(f"{column} must be 0 to {MAX_AMOUNT} fen")
    return amount


def _currency(value: str) -> str:
    if not is_currency(value):
        raise ValueError(f"货币种类 {value!r} is not an ISO 4217 code")
    return value


def _trade_line(row: Row, day: str) -> BillLine:
    state = row["交易状态"]
    currency = _currency(row.get("货币种类") or "CNY")
    if state == "REFUND":
        column = "申请退款金额" if row.get("申请退款金额") else "退款金额"
        return BillLine(
            day,
            REFUND,
            _ref(row["商户退款单号"], "商户退款单号"),
            row["微信退款单号"],
            _amount(row[column], column),
            currency,
            REFUND_STATES.get(row.get("退款状态", ""), FAILED),
            row["交易时间"],
        )
    if state not in TRADE_STATES:
        raise ValueError(f"交易状态 {state!r} is not SUCCESS, REFUND or REVOKED")
    column = "订单金额" if row.get("订单金额") else "应结订单金额"
    return BillLine(
        day,
        PAYMENT,
        _ref(row["商户订单号"], "商户订单号"),
        row["微信订单号"],
        _amount(row[column], column),
        currency,
        TRADE_STATES[state],
        row["交易时间"],
    )


def _transfer_line(row: Row, day: str) -> BillLine:
    state = row["转账状态"]
    return BillLine(
        day,
        PAYOUT,
        _ref(row["商户单号"], "商户单号"),
        row["微信转账单号"],
        _amount(row["转账金额(元)"], "转账金额(元)"),
        _currency(row.get("货币种类") or "CNY"),
        TRANSFER_STATES.get(state, PENDING),
        row.get("发起时间", ""),
    )


# --- plain CSV ---------------------------------------------------------------------------------


def _plain_csv(
    numbered: Sequence[tuple[int, list[str]]], kind: str, day: str, problems: _Problems
) -> list[BillLine]:
    if numbered and [c.strip() for c in numbered[0][1]] == list(CSV_COLUMNS):
        numbered = numbered[1:]
    allowed = BILL_KINDS[kind]
    lines = []
    for line_no, row in numbered:
        values = [v.strip() for v in row]
        if len(values) != len(CSV_COLUMNS):
            problems.add(
                line_no,
                f"has {len(values)} values, not {len(CSV_COLUMNS)} ({','.join(CSV_COLUMNS)})",
            )
            continue
        at, rail_ref, ref, line_kind, amount, currency, state = values
        if line_kind not in allowed:
            problems.add(
                line_no, f"kind {line_kind!r} is not on a {kind} bill ({', '.join(allowed)})"
            )
            continue
        if state not in STATES:
            problems.add(line_no, f"state {state!r} is not one of {', '.join(STATES)}")
            continue
        if not amount.isdigit() or int(amount) > MAX_AMOUNT:
            problems.add(line_no, f"amount {amount!r} is not 0 to {MAX_AMOUNT} minor units")
            continue
        try:
            lines.append(
                BillLine(
                    day,
                    line_kind,
                    _ref(ref, "our_ref"),
                    rail_ref,
                    int(amount),
                    _currency(currency),
                    state,
                    at,
                )
            )
        except ValueError as error:
            problems.add(line_no, str(error))
    return lines
