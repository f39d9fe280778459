"""Baseline B: the same commands written with plain eventsourcing, one save() per command.

No group commit, no idempotency records, no gRPC: the straightforward way to write this
ledger with the library, run from one thread against the same database.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import JSONTranscoder

from bench.cpu import Meter, Split
from bench.workload import Flow, Step
from ledger.adapters.transcodings import register_value_objects
from ledger.domain.decisions import evolve_all
from ledger.domain.order import Order, RefundLine
from ledger.domain.order_decisions import (
    Complete,
    Pay,
    Refund,
    decide_complete,
    decide_pay,
    decide_refund,
)
from ledger.domain.plan_book import PlanBook
from ledger.domain.split import LineItem, UplineMember
from ledger.domain.team import Reseller

PLATFORM = "bench-plain"
SHOP = "shop"


class PlainLedger(Application[UUID]):
    name = "PlainLedger"

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_value_objects(transcoder)

    def run(self, step: Step) -> int:
        """Runs one command with one save; returns how many events it stored."""
        now = datetime.now(UTC)
        if step.kind == "enroll":
            return self._save(Reseller(PLATFORM, step.reseller_id, step.sponsor_id, "", now))
        if step.kind == "place":
            lines = [LineItem(i, x.sku, "general", x.quantity, x.sale, x.supply, "S1")
                     for i, x in enumerate(step.lines, start=1)]
            return self._save(Order(PLATFORM, step.order_id, SHOP, step.customer_id,
                                    step.reseller_id, "CNY", lines, now))
        order: Order = self.repository.get(Order.create_id(PLATFORM, SHOP, step.order_id))
        if step.kind == "pay":
            try:
                book = self.repository.get(PlanBook.create_id(PLATFORM))
            except AggregateNotFoundError:
                book = PlanBook(PLATFORM)
            plan = book.in_force_at(now)
            chain, current = [], order.seller_id
            while current and len(chain) < plan.levels:
                member: Reseller = self.repository.get(Reseller.create_id(PLATFORM, current))
                chain.append(UplineMember(member.reseller_id, member.rank))
                current = member.sponsor_id
            evolve_all(order, decide_pay(order, Pay("w", step.amount, plan, tuple(chain),
                                                    False, now)))
            return self._save(order, book)
        if step.kind == "complete":
            evolve_all(order, decide_complete(order, Complete(now)))
        else:
            evolve_all(order, decide_refund(order, Refund(
                "r1", (RefundLine(1, step.amount),), "", now)))
        return self._save(order)

    def _save(self, *aggregates: object) -> int:
        return len(self.save(*aggregates))  # type: ignore[arg-type]


def run(env: dict[str, str], setup: Sequence[Flow], flows: Sequence[Flow]
        ) -> tuple[int, int, float, Split]:
    """(commands, events, seconds, where the machine's CPU went: this process's, which is
    baseline B, and the rest, PostgreSQL's) for the measured flows, one after another."""
    app = PlainLedger(env=env)
    try:
        for flow in setup:
            for step in flow:
                app.run(step)
        commands = events = 0
        started, meter = time.perf_counter(), Meter()
        for flow in flows:
            for step in flow:
                events += app.run(step)
                commands += 1
        seen = meter.read()  # baseline B is this process: the one under test
        return (commands, events, time.perf_counter() - started,
                Split(seen.client, 0.0, seen.rest, seen.seconds))
    finally:
        app.close()
