"""The demo that `ledger demo` plays against a running ledger, as its clients would:
an admin, a storefront and finance."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from ledger.clients.finance_cli import decimal_amount
from ledger.clients.sdk import LedgerClient, idempotency_key
from ledger.clients.simulator import random_traffic, worked_example
from ledger.projections.clock import Calendar

from ledger.v1 import admin_pb2, common_pb2, finance_pb2, report_pb2, storefront_pb2, tax_pb2

# What each account of the worked example is, for a person reading the postings.
ROLES = {"clearing:customer-funds": "the customer's money, received",
         "supplier:S1": "supplier S1, the supply price",
         "reseller:carol": "Carol, the seller (level 1, 40%)",
         "reseller:bob": "Bob, Carol's sponsor (level 2, 10%)",
         "platform": "the platform, the rest of the margin"}


def print_postings(postings: Iterable[common_pb2.Posting]) -> None:
    """One named line per posting: account, what it is, bucket, amount in the currency's unit."""
    for p in postings:
        print(f"  {p.account:24} {ROLES.get(p.account, ''):38} {p.bucket:8} "
              f"{decimal_amount(p.amount, p.currency):>7} {p.currency}")


def run_demo(admin: LedgerClient, shop: LedgerClient, finance: LedgerClient) -> None:
    # The default plan (40% / 10%), but with no freeze window, so the demo can settle now.
    admin.admin.PublishPlan(admin_pb2.PublishPlanRequest(
        idempotency_key=idempotency_key(), plan=admin_pb2.CommissionPlan(
            level_rates_bps=[4000, 1000], freeze_days=0, min_payout=1000)))

    paid, after_first, after_second = worked_example(shop)
    print("\nWorked example (DOMAIN.md), order O1: customer c1 buys 3 × 33.33 CNY of tea "
          "through Carol\n(team Alice ← Bob ← Carol; supply price 20.00 each, so the margin "
          "is 39.99)")
    print(f"Paid 99.99 CNY: split with plan v{paid.plan_version} along the upline chain "
          f"{' → '.join(paid.upline_chain)} (the seller, then her sponsor); every share "
          "frozen:")
    print_postings(paid.payment_postings)
    for order, why in ((after_first, "one unit back"), (after_second, "the other two back")):
        refund = order.refunds[-1]
        print(f"Refund {refund.refund_id} of {decimal_amount(refund.amount, 'CNY')} CNY "
              f"({why}): each share reversed in proportion:")
        print_postings(refund.postings)
    left = {s.account: decimal_amount(s.amount - s.reversed, "CNY") for s in after_second.shares}
    print("Left of each share after both refunds: "
          + ", ".join(f"{account} {amount}" for account, amount in left.items()))

    stats = random_traffic(shop, orders=40, prefix="sim-")
    print(f"\nSimulated storefront: {stats.resellers} resellers, {stats.orders} orders, "
          f"{stats.paid} paid, {stats.refunds} refunds, GMV "
          f"{decimal_amount(stats.gmv, 'CNY')} CNY, "
          f"refunded {decimal_amount(stats.refunded, 'CNY')} CNY; postings sum to "
          f"{decimal_amount(sum(p.amount for p in stats.postings), 'CNY')} CNY")

    settled = admin.admin.RunSettlement(admin_pb2.RunSettlementRequest(
        idempotency_key=idempotency_key()))
    print(f"\nSettlement: {len(settled.settled_orders)} received orders released to "
          "available")
    report = shop.report
    top = report.ListBalances(report_pb2.ListBalancesRequest(
        kind="reseller", order_by=report_pb2.BALANCE_ORDER_AVAILABLE_DESC, page_size=5,
        min_log_position=settled.receipt.log_position), timeout=30)
    print("Top resellers (read model, CNY):")
    for b in top.balances:
        print(f"  {b.account:22} available {decimal_amount(b.available, 'CNY'):>9}  "
              f"frozen {decimal_amount(b.frozen, 'CNY'):>9}")
    richest = top.balances[0]
    reseller_id = richest.account.split(":", 1)[1]
    amount = richest.available // 2
    # Resellers are individuals: finance records who they are before anyone is paid.
    finance.tax.RecordPayee(tax_pb2.RecordPayeeRequest(
        idempotency_key=idempotency_key(), account=richest.account,
        kind=tax_pb2.PAYEE_KIND_INDIVIDUAL, identity=tax_pb2.PayeeIdentity(
            name=f"Reseller {reseller_id}", id_type="resident_id",
            id_number="110105199001010000")))
    payout = shop.storefront.RequestWithdrawal(storefront_pb2.RequestWithdrawalRequest(
        idempotency_key=idempotency_key(), reseller_id=reseller_id, currency="CNY",
        amount=amount)).payout
    finance.finance.ApprovePayout(finance_pb2.ApprovePayoutRequest(
        idempotency_key=idempotency_key(), payout_id=payout.payout_id))
    done = finance.finance.MarkPayoutPaid(finance_pb2.MarkPayoutPaidRequest(
        idempotency_key=idempotency_key(), payout_id=payout.payout_id, reference="wx-demo-1"))
    after = report.GetBalance(report_pb2.GetBalanceRequest(
        account=richest.account, min_log_position=done.receipt.log_position)).balances[0]
    print(f"\nPayout {payout.payout_id}: {decimal_amount(amount, 'CNY')} CNY to {reseller_id}, "
          f"tax withheld {decimal_amount(payout.tax, 'CNY')}, approved and paid (rail "
          f"reference wx-demo-1); now available "
          f"{decimal_amount(after.available, 'CNY')}, paid out "
          f"{decimal_amount(after.paid_out, 'CNY')}")

    individual_payouts(shop, admin, finance)

    everyone = report.ListBalances(report_pb2.ListBalancesRequest(page_size=1000))
    held = sum(b.frozen + b.available - b.debt + b.in_flight + b.paid_out + b.clearing
               for b in everyone.balances)
    print(f"Every account of the platform together: {decimal_amount(held, 'CNY')} CNY "
          "(double entry: what one account is owed, another gave)")
    month = Calendar().month(datetime.now(UTC))
    stats_r1 = report.GetTeamStats(report_pb2.GetTeamStatsRequest(reseller_id="sim-r1",
                                                                  month=month))
    member = report.GetTeamMember(report_pb2.GetTeamMemberRequest(reseller_id="sim-r1")).member
    gmv = stats_r1.sales[0].team_gmv if stats_r1.sales else 0
    print(f"\nTeam of sim-r1 in {month}: {member.team_size} members, "
          f"{member.direct_downline} direct; team GMV {decimal_amount(gmv, 'CNY')} CNY, "
          f"{stats_r1.new_members} new members")


def individual_payouts(shop: LedgerClient, admin: LedgerClient,
                       finance: LedgerClient) -> None:
    """An individual reseller paid twice across a bracket edge: the first payout's
    cumulative taxable income is in the 3% bracket, the second's above 36,000.00 (10%)."""
    from ledger.clients.simulator import line

    shop.storefront.EnrollReseller(storefront_pb2.EnrollResellerRequest(
        idempotency_key=idempotency_key(), reseller_id="dana", without_sponsor=True))
    shop.storefront.PlaceOrder(storefront_pb2.PlaceOrderRequest(
        idempotency_key=idempotency_key(), order_id="D1", customer_id="dana-customer",
        reseller_id="dana", currency="CNY", lines=[line("piano", 1, 16_000_000, 1_000_000)]))
    shop.storefront.PayOrder(storefront_pb2.PayOrderRequest(
        idempotency_key=idempotency_key(), order_id="D1", payment_id="w-D1",
        amount=16_000_000))
    shop.storefront.CompleteOrder(storefront_pb2.CompleteOrderRequest(
        idempotency_key=idempotency_key(), order_id="D1"))
    admin.admin.RunSettlement(admin_pb2.RunSettlementRequest(idempotency_key=idempotency_key()))
    finance.tax.RecordPayee(tax_pb2.RecordPayeeRequest(
        idempotency_key=idempotency_key(), account="reseller:dana",
        kind=tax_pb2.PAYEE_KIND_INDIVIDUAL, identity=tax_pb2.PayeeIdentity(
            name="Dana Li", id_type="resident_id", id_number="11010519900307002X")))
    print("\nIncome tax withheld from an individual (cumulative method, this month):")
    for n, gross in enumerate((4_000_000, 2_000_000), start=1):
        payout = finance.finance.RequestPayout(finance_pb2.RequestPayoutRequest(
            idempotency_key=idempotency_key(), account="reseller:dana", currency="CNY",
            amount=gross)).payout
        finance.finance.ApprovePayout(finance_pb2.ApprovePayoutRequest(
            idempotency_key=idempotency_key(), payout_id=payout.payout_id))
        finance.finance.MarkPayoutPaid(finance_pb2.MarkPayoutPaidRequest(
            idempotency_key=idempotency_key(), payout_id=payout.payout_id,
            reference=f"wx-dana-{n}"))
        print(f"  payout {n} to dana: gross {decimal_amount(payout.amount, 'CNY'):>9}, "
              f"tax {decimal_amount(payout.tax, 'CNY'):>7}, net "
              f"{decimal_amount(payout.net, 'CNY'):>9} CNY")
    print("  (taxable 40,000 × 80% − 5,000 = 27,000.00 at 3%; then 60,000 × 80% − 5,000 = "
          "43,000.00, past the 36,000.00 edge: 10% − 2,520 = 1,780.00 in all)")
