"""Tax read models: what was withheld, per payee, for the monthly filing and the quarterly
report (DOMAIN.md "Tax on commission paid to individuals").

``proj_withholdings`` holds a row per payout when requested (gross and tax, tax 0 for a
business) and a row taking both back when it fails or is rejected, each with its log position
and the time it was recorded: a failure lands in the month or quarter it is recorded in,
like every correction. The quarterly report adds the commission earned and clawed back from
the balances' movements (payments and refunds of each payee's account).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ledger.projections.db import Cursor

from ledger.domain.quarters import QuarterLine

PAYEE_KINDS = ("reseller", "supplier")


@dataclass(frozen=True)
class MonthLine:
    account: str
    currency: str
    payouts: int
    gross: int
    tax: int


def monthly(cur: Cursor, platform: str, start: int, end: int) -> list[MonthLine]:
    """Per payee and currency: payouts standing, gross and tax recorded in [start, end)."""
    cur.execute(
        "SELECT account, currency, SUM(CASE WHEN gross > 0 THEN 1 ELSE -1 END), SUM(gross), "
        "SUM(tax) FROM proj_withholdings WHERE platform = %s AND at >= %s AND at < %s "
        "GROUP BY account, currency ORDER BY account, currency",
        (platform, start, end),
    )
    return [
        MonthLine(a, c, int(n), int(g), int(t)) for a, c, n, g, t in cur.fetchall() if n or g or t
    ]


def quarter_lines(
    cur: Cursor, platform: str, start: int, end: int, *, carried_after: int, up_to: int
) -> list[QuarterLine]:
    """The quarter [start, end) as recorded up to log position ``up_to``; with entries dated
    before it but recorded after ``carried_after`` (the last closed quarter's position:
    corrections that came too late for their own quarter's report). -1: none carried."""
    where = (
        "platform = %s AND position <= %s AND ((at >= %s AND at < %s) OR "
        "(at < %s AND position > %s))"
    )
    params = (platform, up_to, start, end, start, carried_after if carried_after >= 0 else up_to)
    figures: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    cur.execute(
        "SELECT account, currency, kind, SUM(amount) FROM proj_movements WHERE "
        f"{where} AND kind IN ('payment', 'refund') GROUP BY account, currency, kind",
        params,
    )
    for account, currency, kind, amount in cur.fetchall():
        if account.partition(":")[0] in PAYEE_KINDS:
            if kind == "payment":
                figures[(account, currency)][0] += int(amount)
            else:
                figures[(account, currency)][1] -= int(amount)
    cur.execute(
        f"SELECT account, currency, SUM(gross), SUM(tax) FROM proj_withholdings WHERE {where} "
        "GROUP BY account, currency",
        params,
    )
    for account, currency, gross, tax in cur.fetchall():
        figures[(account, currency)][2] += int(gross)
        figures[(account, currency)][3] += int(tax)
    return [
        QuarterLine(account, currency, *values)
        for (account, currency), values in sorted(figures.items())
        if any(values)
    ]
