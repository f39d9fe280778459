"""A server's parts without its API, for tests of the application's use cases: the store,
the group commit, the read models following the log in their own thread, and the audit
trail, all real. ``stack`` (tests/integration/conftest.py) gives one per test."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ledger.projections.clock import Calendar
from ledger.projections.reader import ReadModels
from ledger.projections.runner import ProjectionRunner

from ledger.adapters.audit_store import AuditLog
from ledger.application import commands as c
from ledger.application.audit_trail import AuditTrail, load_or_create_signer
from ledger.application.group_commit import GroupCommitter
from ledger.application.ledger_app import LedgerApplication, Outcome
from ledger.application.settlement import Settlement
from ledger.application.steps import Steps, background_steps
from ledger.bootstrap import build_application
from tests.conftest import Clock

SHOP = c.Caller("acme", "shop-a", "storefront")
ADMIN = c.Caller("acme", "ops", "admin")
FINANCE = c.Caller("acme", "fin", "finance")
TEA = (c.NewLine("tea", "drinks", 3, 3333, 2000, "S1"),)  # 3 × 33.33, supply 20.00
TEAM = (c.EnrollReseller("e1", "alice", "", "", True),
        c.EnrollReseller("e2", "bob", "alice", "", False),
        c.EnrollReseller("e3", "carol", "bob", "", False))
T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@dataclass
class Stack:
    app: LedgerApplication
    writer: GroupCommitter
    models: ReadModels
    steps: Steps
    audit: AuditTrail

    def do(self, caller: c.Caller, *commands: c.Command) -> Outcome:
        """Writes each command through the group commit; the last one's outcome. A refusal
        is raised."""
        outcomes = [self.writer.submit(caller, command).result(timeout=30)
                    for command in commands]
        return outcomes[-1]

    def answer(self, caller: c.Caller, command: c.Command) -> Any:
        """Writes the command; the aggregate it answers with."""
        return run(self.steps.write(caller, command))[1]

    def sell(self, order_id: str, payment_id: str = "") -> Outcome:
        """Carol sells O: placed, paid 99.99 (Carol earns 15.99, Bob 3.99), received."""
        return self.do(SHOP, c.PlaceOrder(f"p-{order_id}", order_id, "c1", "carol", "CNY", TEA),
                       c.PayOrder(f"y-{order_id}", order_id, payment_id or f"w-{order_id}",
                                  9999),
                       c.CompleteOrder(f"d-{order_id}", order_id))

    def caught_up(self) -> None:
        """Until the read models hold everything written so far."""
        run(self.steps.caught_up(self.app.log_position()))

    def of(self, account: str) -> dict[str, int]:
        """The account's CNY balance, bucket by bucket as GetBalance shows it (available never
        below zero: what is missing is the debt), once the read models hold every write."""
        self.caught_up()
        found = self.models.balances("acme", account)
        if not found:
            return {}
        [b] = found
        return {k: v for k, v in (("frozen", b.frozen), ("available", max(b.available, 0)),
                                  ("in_flight", b.in_flight), ("paid_out", b.paid_out),
                                  ("debt", b.debt)) if v}

    def settle(self, key: str) -> list[str]:
        """A settlement run on request (application/settlement.py): the ids it settled."""
        _, ran = run(Settlement(self.app, self.models).run(self.steps, ADMIN, key))
        return [o.order_id for o in ran.orders]


@contextmanager
def running_stack(store_url: str, clock: Clock, tmp_path: Path) -> Iterator[Stack]:
    app = build_application(store_url, clock)
    calendar = Calendar(app.timezone)
    runner = ProjectionRunner(app, store_url, calendar=calendar)
    models = ReadModels(store_url, calendar)
    writer = GroupCommitter(app, on_commit=runner.wake)
    runner.start()
    writer.start()
    audit = AuditTrail(AuditLog(app), load_or_create_signer(tmp_path / "audit-key.pem"))
    audit.publish_key()
    try:
        yield Stack(app, writer, models, background_steps(app, writer, lambda: runner.position),
                    audit)
    finally:
        writer.stop()
        runner.stop()
        models.close()
        app.close()
