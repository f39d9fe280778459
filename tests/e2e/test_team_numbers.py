"""GetTeamStats as of a log position, through the API: the figures of a position, and a
position the log has not reached refused. The team numbers' rules, figure by figure, are in
tests/integration/test_team_numbers.py."""

from __future__ import annotations

from ledger.clients.simulator import line

from ledger.v1 import report_pb2, storefront_pb2
from tests.conftest import Running
from tests.helpers import enroll, pay, refused
from tests.integration.test_team_numbers import NOV


def test_get_team_stats_reads_as_of_a_log_position_and_refuses_one_not_reached(
    running: Running,
) -> None:
    with running.client(running.keys.shop_a) as shop:
        enroll(shop, "alice", without_sponsor=True)
        placed = shop.storefront.PlaceOrder(storefront_pb2.PlaceOrderRequest(
            idempotency_key="p-O1", order_id="O1", customer_id="c1", reseller_id="alice",
            currency="CNY", lines=[line("tea", 3, 3333, 2000)])).receipt.log_position
        pay(shop, "O1")
        head = shop.report.GetProjectionStatus(report_pb2.GetProjectionStatusRequest())
        before = shop.report.GetTeamStats(report_pb2.GetTeamStatsRequest(
            reseller_id="alice", month=NOV, as_of_log_position=placed))
        now = shop.report.GetTeamStats(report_pb2.GetTeamStatsRequest(
            reseller_id="alice", month=NOV, as_of_log_position=head.log_position))
        assert [s.own_sales for s in before.sales] == []
        assert [s.own_sales for s in now.sales] == [9999]
        for bad in (-1, head.log_position + 1_000):
            refusal = refused(lambda b=bad: shop.report.GetTeamStats(
                report_pb2.GetTeamStatsRequest(reseller_id="alice", month=NOV,
                                               as_of_log_position=b)))
            assert "as_of_log_position" in refusal.fields
