"""The ReportService: balances and team numbers from the read models, with read-your-writes."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ledger.api import convert
from ledger.api.auth import ADMIN, AUDITOR, FINANCE, STOREFRONT
from ledger.api.servicers import Base, rpc
from ledger.application.commands import check_month
from ledger.domain.errors import InvalidInput, NotFound, check
from ledger.projections.balances import KINDS, Balance, sort_value
from ledger.projections.clock import END_OF_TIME, from_micros, micros
from ledger.projections.team_tree import Node
from ledger.v1 import report_pb2, report_pb2_grpc

ANY_KEY = (STOREFRONT, ADMIN, FINANCE, AUDITOR)
MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_SUBTREE_DEPTH = 100
T = TypeVar("T")
KEY_SEPARATOR = "\x1f"  # between account and currency in a balance's page token
ORDERS = {
    report_pb2.BALANCE_ORDER_UNSPECIFIED: "account",
    report_pb2.BALANCE_ORDER_ACCOUNT: "account",
    report_pb2.BALANCE_ORDER_FROZEN_DESC: "frozen_desc",
    report_pb2.BALANCE_ORDER_AVAILABLE_DESC: "available_desc",
    report_pb2.BALANCE_ORDER_TOTAL_DESC: "total_desc",
}


def balance(b: Balance) -> report_pb2.AccountBalance:
    return report_pb2.AccountBalance(
        account=b.account, kind=b.kind, currency=b.currency, frozen=b.frozen,
        available=max(b.available, 0), in_flight=b.in_flight, paid_out=b.paid_out, debt=b.debt,
        clearing=b.clearing, last_position=b.last_position,
    )


def member(n: Node) -> report_pb2.TeamMember:
    return report_pb2.TeamMember(
        reseller_id=n.reseller_id, sponsor_id=n.sponsor_id, depth=n.depth,
        direct_downline=n.direct_count, team_size=n.team_size, rank=n.rank,
        enrolled_at=convert.timestamp(from_micros(n.enrolled_at)),
    )


@dataclass(frozen=True)
class Page:
    """Which page a list call asks for. Pages continue after the last item of the one
    before (a keyset: its sort value and key), so items leaving or joining a list between
    two calls never make the next page skip or repeat one. Offsets come only from tokens
    given before keysets."""

    limit: int
    after: tuple[int, str] | None = None
    offset: int = 0

    def next_token(self, items: Sequence[T], key: Callable[[T], tuple[int, str]]) -> str:
        """The token for the page after ``items`` (``key``: an item's sort value and key);
        none once a page comes back short."""
        if len(items) < self.limit:
            return ""
        at, name = key(items[-1])
        return base64.urlsafe_b64encode(f"k:{at}:{name}".encode()).decode()


def page(token: str, size: int) -> Page:
    """The page a token and size ask for; the token is opaque to clients."""
    if not 0 <= size <= MAX_PAGE:
        raise InvalidInput([("page_size", f"must be 0 to {MAX_PAGE}")])
    limit = size or DEFAULT_PAGE
    if not token:
        return Page(limit)
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if text.startswith("k:"):
            at, _, name = text[2:].partition(":")
            return Page(limit, after=(int(at), name))
        return Page(limit, offset=int(text.removeprefix("o:")))
    except ValueError:
        raise InvalidInput([("page_token", "is not a token this service gave")]) from None


def balance_after(after: tuple[int, str] | None) -> tuple[int, str, str] | None:
    """A balance page token's (sort value, account, currency)."""
    if after is None:
        return None
    account, separator, currency = after[1].partition(KEY_SEPARATOR)
    if not separator:
        raise InvalidInput([("page_token", "is not a token this service gave")])
    return after[0], account, currency


def as_of_micros(ts: object, present: bool) -> int:
    at = convert.from_timestamp(ts, present)  # type: ignore[arg-type]
    return micros(at) if at is not None else END_OF_TIME


class ReportService(Base, report_pb2_grpc.ReportServiceServicer):
    @rpc(*ANY_KEY)
    async def GetBalance(self, request, context, caller):  # type: ignore[no-untyped-def]
        if not request.account:
            raise InvalidInput([("account", "is required, e.g. reseller:carol")])
        position = await self.caught_up(request.min_log_position, context)
        found = await self.read(
            self.models.balances, caller.platform_id, request.account,
            position=request.as_of.log_position,
            at=as_of_micros(request.as_of.time, request.as_of.HasField("time")),
        )
        return report_pb2.GetBalanceResponse(balances=[balance(b) for b in found],
                                             log_position=position)

    @rpc(*ANY_KEY)
    async def ListBalances(self, request, context, caller):  # type: ignore[no-untyped-def]
        if request.kind and request.kind not in KINDS:
            raise InvalidInput([("kind", f"must be one of {', '.join(KINDS)}")])
        if request.order_by not in ORDERS:
            raise InvalidInput([("order_by", "is not a known order")])
        # Continues after the last balance's sort value, account and currency (see Page).
        order_by = ORDERS[request.order_by]
        wanted = page(request.page_token, request.page_size)
        position = await self.caught_up(request.min_log_position, context)
        found = await self.read(
            self.models.page_of_balances, caller.platform_id, kind=request.kind,
            currency=request.currency, order_by=order_by, offset=wanted.offset,
            limit=wanted.limit, after=balance_after(wanted.after),
        )
        return report_pb2.ListBalancesResponse(
            balances=[balance(b) for b in found], log_position=position,
            next_page_token=wanted.next_token(found, lambda b: (
                sort_value(b, order_by), b.account + KEY_SEPARATOR + b.currency)),
        )

    @rpc(*ANY_KEY)
    async def GetTeamMember(self, request, context, caller):  # type: ignore[no-untyped-def]
        position = await self.caught_up(request.min_log_position, context)
        found = await self.read(self.models.member, caller.platform_id, request.reseller_id)
        if found is None:
            raise NotFound(f"reseller {request.reseller_id} does not exist")
        return report_pb2.GetTeamMemberResponse(member=member(found), log_position=position)

    @rpc(*ANY_KEY)
    async def GetUpline(self, request, context, caller):  # type: ignore[no-untyped-def]
        position = await self.caught_up(request.min_log_position, context)
        found = await self.read(self.models.upline, caller.platform_id, request.reseller_id,
                                as_of_micros(request.as_of, request.HasField("as_of")))
        if found is None:
            raise NotFound(f"reseller {request.reseller_id} did not exist then")
        return report_pb2.GetUplineResponse(upline=found, log_position=position)

    @rpc(*ANY_KEY)
    async def ListSubtree(self, request, context, caller):  # type: ignore[no-untyped-def]
        if not 0 <= request.max_depth <= MAX_SUBTREE_DEPTH:
            raise InvalidInput([("max_depth", f"must be 0 to {MAX_SUBTREE_DEPTH}")])
        # Continues after the last member's level and id (see Page).
        wanted = page(request.page_token, request.page_size)
        position = await self.caught_up(request.min_log_position, context)
        found = await self.read(
            self.models.subtree, caller.platform_id, request.reseller_id,
            max_depth=request.max_depth or MAX_SUBTREE_DEPTH,
            at=as_of_micros(request.as_of, request.HasField("as_of")), offset=wanted.offset,
            limit=wanted.limit, after=wanted.after,
        )
        return report_pb2.ListSubtreeResponse(
            members=[report_pb2.SubtreeMember(reseller_id=r, sponsor_id=s, level=lvl)
                     for r, s, lvl in found],
            next_page_token=wanted.next_token(found, lambda m: (m[2], m[0])),
            log_position=position,
        )

    @rpc(*ANY_KEY)
    async def GetTeamStats(self, request, context, caller):  # type: ignore[no-untyped-def]
        violations: list[tuple[str, str]] = []
        check_month(violations, "month", request.month)
        check(violations)
        as_of_position = request.as_of_log_position
        if as_of_position < 0:
            raise InvalidInput([("as_of_log_position", "must be 0 (all recorded) or a "
                                                       "receipt's log_position")])
        if as_of_position and as_of_position > await self.read(self.app.log_position):
            raise InvalidInput([("as_of_log_position", "the log has not reached it")])
        position = await self.caught_up(max(request.min_log_position, as_of_position),
                                        context)
        stats = await self.read(self.models.team_stats, caller.platform_id,
                                request.reseller_id, request.month,
                                as_of_micros(request.as_of, request.HasField("as_of")),
                                as_of_position or END_OF_TIME)
        return report_pb2.GetTeamStatsResponse(
            reseller_id=request.reseller_id, month=request.month,
            sales=[report_pb2.CurrencyStats(
                currency=cur, own_sales=stats.own_sales.get(cur, 0),
                team_gmv=stats.team_gmv.get(cur, 0), target=stats.targets.get(cur, 0),
                progress_bps=stats.progress_bps(cur)) for cur in stats.currencies],
            new_members=stats.new_members, members_at_start=stats.members_at_start,
            active_members=stats.active_members, retention_bps=stats.retention_bps,
            log_position=position,
        )

    @rpc(*ANY_KEY)
    async def GetProjectionStatus(self, request, context, caller):  # type: ignore[no-untyped-def]
        head = await self.read(self.app.log_position)
        processed = self.processed()
        return report_pb2.GetProjectionStatusResponse(
            log_position=head, processed_position=processed, lag=max(head - processed, 0))
