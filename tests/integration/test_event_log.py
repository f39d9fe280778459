"""The event log is the truth: replays, double entry, group commit, concurrent writers."""

from __future__ import annotations

import dataclasses
import uuid
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import wait
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.adapters.transcodings import register_value_objects
from ledger.application import commands as c
from ledger.application.group_commit import GroupCommitter
from ledger.application.ledger_app import LedgerApplication, Outcome
from ledger.bootstrap import build_application
from ledger.domain.errors import Conflict, LedgerError
from ledger.domain.order import Order
from ledger.domain.periods import DayStatement
from tests.conftest import Clock

SHOP = c.Caller("acme", "shop-a")


def team_commands() -> list[c.Command]:
    return [
        c.EnrollReseller("e1", "alice", "", "", True),
        c.EnrollReseller("e2", "bob", "alice", "", False),
        c.EnrollReseller("e3", "carol", "bob", "", False),
    ]


def tea(qty: int = 3) -> tuple[c.NewLine, ...]:
    return (c.NewLine("tea", "drinks", qty, 3333, 2000, "S1"),)


def run(app: LedgerApplication, *commands: c.Command) -> list[Outcome]:
    results = app.run_batch([(SHOP, command) for command in commands])
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


def all_events(app: LedgerApplication) -> Iterator[Any]:
    start = 1
    while True:
        batch = app.recorder.select_notifications(start, 500)
        if not batch:
            return
        for notification in batch:
            yield app.mapper.to_domain_event(notification)
        start = batch[-1].id + 1


def balances_from_log(app: LedgerApplication) -> dict[tuple[str, str, str], int]:
    """Balances straight from the postings written into the events."""
    out: dict[tuple[str, str, str], int] = defaultdict(int)
    for event in all_events(app):
        postings = getattr(event, "postings", None)
        if postings is None and hasattr(event, "refund"):
            postings = event.refund.postings
        for p in postings or ():
            out[(p.account, p.bucket, p.currency)] += p.amount
    return {k: v for k, v in out.items() if v}


def order_state(order: Order) -> dict[str, Any]:
    return {k: v for k, v in vars(order).items() if k not in ("_pending_events",)}


def test_batch_with_a_refused_command_commits_the_others_and_leaves_no_trace(
    app: LedgerApplication,
) -> None:
    run(app, *team_commands(), c.PlaceOrder("p1", "O1", "c1", "carol", "CNY", tea()),
        c.PayOrder("pay1", "O1", "w1", 9999))
    position = app.log_position()
    results = app.run_batch([
        (SHOP, c.RefundOrder("r1", "O1", "r1", (c.RefundLineRequest(1, 3333),), "")),
        (SHOP, c.RefundOrder("r2", "O1", "r2", (c.RefundLineRequest(1, 9000),), "")),  # too much
        (SHOP, c.RefundOrder("r3", "O1", "r3", (c.RefundLineRequest(1, 6666),), "")),
    ])
    assert isinstance(results[1], LedgerError)
    assert isinstance(results[0], Outcome) and isinstance(results[2], Outcome)
    order = app.order(SHOP, "O1")
    assert list(order.refunds) == ["r1", "r3"] and order.refunded == 9999
    # One transaction: both refunds, and their keys beside the log; nothing of r2.
    assert app.log_position() - position == 2
    keys = app.idempotency_keys.recorded_keys([("acme", SHOP.principal, k)
                                               for k in ("r1", "r2", "r3")])
    assert sorted(k for _, _, k in keys) == ["r1", "r3"]
    assert {r.position for r in keys.values()} == {position + 1, position + 2}
    retried = app.run_batch([
        (SHOP, c.RefundOrder("r2", "O1", "r2", (c.RefundLineRequest(1, 1),), ""))])
    assert isinstance(retried[0], LedgerError)  # fully refunded now; key r2 was never used


def test_replay_from_scratch_gives_the_same_orders_and_balances(
    store_url: str, clock: Clock
) -> None:
    app = build_application(store_url, clock)
    run(app, *team_commands(), c.PlaceOrder("p1", "O1", "c1", "carol", "CNY", tea()),
        c.PayOrder("pay1", "O1", "w1", 9999),
        c.RefundOrder("r1", "O1", "r1", (c.RefundLineRequest(1, 3333),), ""))
    live = order_state(app.order(SHOP, "O1"))
    app.close()
    fresh = build_application(store_url, clock)
    try:
        assert order_state(fresh.order(SHOP, "O1")) == live
        assert balances_from_log(fresh) == {
            ("clearing:customer-funds", "clearing", "CNY"): -6666,
            ("supplier:S1", "frozen", "CNY"): 4000,
            ("reseller:carol", "frozen", "CNY"): 1066,
            ("reseller:bob", "frozen", "CNY"): 266,
            ("platform", "frozen", "CNY"): 1334,
        }
    finally:
        fresh.close()


orders = st.lists(
    st.tuples(
        st.lists(st.tuples(st.integers(1, 5), st.integers(0, 20_000), st.integers(0, 20_000)),
                 min_size=1, max_size=4),
        st.sampled_from(["carol", "bob", "alice", ""]),
        st.lists(st.tuples(st.integers(0, 3), st.integers(1, 100)), max_size=4),
    ),
    min_size=1, max_size=6,
)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(orders=orders)
def test_any_history_replays_to_the_same_state_and_sums_to_zero(
    store_url: str, tmp_path: Path, orders: list[Any]
) -> None:
    # Hypothesis runs many examples in one test: each gets ids (and a SQLite file) of its own.
    prefix = f"{uuid.uuid4().hex[:8]}-"
    url = store_url
    if url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / f'{prefix}.sqlite3'}"
    app = build_application(url, Clock())
    try:
        run(app, *[c.EnrollReseller(prefix + k.idempotency_key, prefix + k.reseller_id,
                                    prefix + k.sponsor_id if k.sponsor_id else "", "",
                                    k.without_sponsor)
                   for k in team_commands() if isinstance(k, c.EnrollReseller)])
        for n, (lines, seller, refunds) in enumerate(orders):
            order_id = f"{prefix}O{n}"
            new_lines = tuple(c.NewLine(f"sku{q}", "", q, sale, supply, "S1")
                              for q, sale, supply in lines)
            total = sum(q * sale for q, sale, _ in lines)
            run(app, c.PlaceOrder(f"{order_id}p", order_id, f"{prefix}c{n}",
                                  prefix + seller if seller else "", "CNY", new_lines),
                c.PayOrder(f"{order_id}y", order_id, "w", total))
            for k, (line_index, percent) in enumerate(refunds):
                if line_index >= len(lines):
                    continue
                q, sale, _ = lines[line_index]
                amount = q * sale * percent // 100
                # Refusals (above paid, zero) are fine: they must simply write nothing.
                app.run_batch([(SHOP, c.RefundOrder(
                    f"{order_id}r{k}", order_id, f"r{k}",
                    (c.RefundLineRequest(line_index + 1, amount),), ""))])
        live = {o: order_state(app.order(SHOP, f"{prefix}O{o}")) for o in range(len(orders))}
        totals: dict[str, int] = defaultdict(int)
        for (_, _, currency), amount in balances_from_log(app).items():
            totals[currency] += amount
        assert all(v == 0 for v in totals.values())
        for o in live.values():
            assert 0 <= o["refunded_by_line"][1] <= o["lines"][0].amount
            for share, reversed_ in zip(o["shares"], o["reversed"], strict=True):
                if share.role != "platform":
                    assert 0 <= reversed_ <= share.amount
    finally:
        app.close()
    again = build_application(url, Clock())
    try:
        assert {o: order_state(again.order(SHOP, f"{prefix}O{o}")) for o in live} == live
    finally:
        again.close()


def test_group_commit_shares_transactions_between_concurrent_requests(
    app: LedgerApplication,
) -> None:
    run(app, *team_commands())
    writer = GroupCommitter(app, max_batch=50, max_wait=0.005)
    writer.start()
    try:
        futures = [
            writer.submit(SHOP, c.PlaceOrder(f"k{n}", f"O{n}", f"c{n}", "carol", "CNY", tea()))
            for n in range(200)
        ]
        wait(futures, timeout=60)
        outcomes = [f.result() for f in futures]
    finally:
        writer.stop()
    assert all(not o.replayed for o in outcomes)
    assert writer.commands == 200 and writer.batches < 200
    assert len({o.ref.aggregate_id for o in outcomes}) == 200


def test_each_write_answers_its_own_position_and_a_replay_the_first_ones(
    store_url: str, clock: Clock
) -> None:
    """A write's receipt is the log position of the last event it wrote: in a batch each
    write has its own, at which the read models hold it; a
    replay answers the first one's, in a later batch, in the same batch, and on another
    application over the same store (another server, or the same after a restart)."""
    from ledger.projections.reader import ReadModels
    from ledger.projections.runner import ProjectionRunner

    from ledger.domain.team import CustomerBinding

    places = [c.PlaceOrder(f"p{n}", f"O{n}", f"c{n}", "carol", "CNY", tea()) for n in (1, 2)]
    pays = [c.PayOrder(f"y{n}", f"O{n}", "w", 9999) for n in (1, 2)]
    app = build_application(store_url, clock)
    try:
        run(app, *team_commands())
        first = run(app, *places) + run(app, *pays)
        positions = [o.log_position for o in first]
        assert positions == sorted(set(positions))
        log = {(n.originator_id, n.originator_version): n.id
               for n in app.recorder.select_notifications(1, 1000)}
        assert log[(CustomerBinding.create_id("acme", "c2"), 1)] <= positions[1]
        for outcome in first:
            assert log[(outcome.ref.aggregate_id, outcome.ref.version)] <= outcome.log_position

        # Read models brought exactly to a payment's receipt hold it (and here, where the
        # next write touches other records, not the next one).
        for receipt, frozen in zip(positions[2:], (1599, 2 * 1599), strict=True):
            runner = ProjectionRunner(app, store_url, batch_size=receipt)
            models = ReadModels(store_url)
            try:
                runner.reset()
                runner.run_once()
                assert runner.processed_position() == receipt
                assert [b.frozen for b in models.balances("acme", "reseller:carol")] == [frozen]
            finally:
                models.close()
                runner.stop()

        later = run(app, c.PlaceOrder("p3", "O3", "c1", "carol", "CNY", tea()), pays[1],
                    places[0])
        assert [o.replayed for o in later] == [False, True, True]
        assert [o.log_position for o in later[1:]] == [positions[3], positions[0]]
        pay_o3 = c.PayOrder("y3", "O3", "w", 9999)
        twice = run(app, pay_o3, pay_o3)
        assert [o.replayed for o in twice] == [False, True]
        assert twice[0].log_position == twice[1].log_position
    finally:
        app.close()
    again = build_application(store_url, clock)
    try:
        replayed = run(again, *places, *pays)
        assert [(o.log_position, o.replayed) for o in replayed] == [(p, True) for p in positions]
    finally:
        again.close()


def test_concurrent_writer_on_another_server_is_retried(store_url: str, clock: Clock) -> None:
    """Two servers over one store: a batch that meets the other's write is run again, and
    a batch that keeps meeting one gives up with Conflict (ABORTED) having written nothing."""
    other = build_application(store_url, clock)
    interfere = {"times": 0}
    keys = iter(range(1000))

    class Overtaken(LedgerApplication):
        """Lets the other server commit a write to the same order just before each save."""

        name = "Ledger"  # the same application, hence the same tables

        def save_staged(self, aggregates: Any, *rest: Any) -> Any:
            if interfere["times"] > 0:
                interfere["times"] -= 1
                n = next(keys)
                run(other, c.RefundOrder(f"o{n}", "O1", f"o{n}", (c.RefundLineRequest(1, 1),), ""))
            return super().save_staged(aggregates, *rest)

    app = build_application(store_url, clock, app_class=Overtaken)
    try:
        run(other, *team_commands(), c.PlaceOrder("p", "O1", "c1", "carol", "CNY", tea()),
            c.PayOrder("y", "O1", "w", 9999))
        interfere["times"] = 1
        [outcome] = run(app, c.RefundOrder("r", "O1", "r", (c.RefundLineRequest(1, 10),), ""))
        assert app.answer(outcome.ref).refunded == 11
        assert interfere["times"] == 0
        interfere["times"] = 100
        [result] = app.run_batch(
            [(SHOP, c.RefundOrder("r2", "O1", "r2", (c.RefundLineRequest(1, 10),), ""))])
        assert isinstance(result, Conflict)
        order = other.order(SHOP, "O1")
        assert "r2" not in order.refunds and order.refunded == 14
    finally:
        app.close()
        other.close()


@pytest.mark.postgres
def test_two_servers_writing_at_once_lose_nothing(postgres_url: str, clock: Clock) -> None:
    """Concurrent group-committed writers over one PostgreSQL store (two 'servers')."""
    first, second = build_application(postgres_url, clock), build_application(postgres_url, clock)
    try:
        run(first, *team_commands())
        writers = [GroupCommitter(a, max_batch=20) for a in (first, second)]
        for w in writers:
            w.start()
        futures = []
        for n in range(100):
            # Both servers pay into the same plan book and the same customer binding.
            w = writers[n % 2]
            futures.append(w.submit(SHOP, c.PlaceOrder(f"k{n}", f"O{n}", "c1", "carol", "CNY",
                                                       tea())))
        wait(futures, timeout=120)
        for w in writers:
            w.stop()
        results = [f.exception() or f.result() for f in futures]
        assert all(isinstance(r, Outcome) for r in results), results
        assert len({first.order(SHOP, f"O{n}").order_id for n in range(100)}) == 100
    finally:
        first.close()
        second.close()


def test_writer_cache_never_hides_another_servers_change(store_url: str, clock: Clock) -> None:
    """Server A has carol cached; server B ranks her up; A's next payment uses the new rank."""
    from ledger.domain.plan import RANK, RateOverride

    a, b = build_application(store_url, clock), build_application(store_url, clock)
    admin = c.Caller("acme", "ops", "admin")
    try:
        run(a, *team_commands())
        [published] = a.run_batch([(admin, c.PublishPlan(
            "plan", None, (4000, 1000), (RateOverride(RANK, "vip", 1, 5000),), 7, 1000,
            False))])
        assert isinstance(published, Outcome)
        clock.advance(seconds=1)
        run(a, c.PlaceOrder("p1", "O1", "c1", "carol", "CNY", tea()),
            c.PayOrder("y1", "O1", "w", 9999))
        assert a.order(SHOP, "O1").shares[1].amount == 1599  # carol now sits in A's cache
        [ranked] = b.run_batch([(admin, c.SetRank("rank", "carol", "vip"))])
        assert isinstance(ranked, Outcome)
        run(a, c.PlaceOrder("p2", "O2", "c1", "carol", "CNY", tea()),
            c.PayOrder("y2", "O2", "w", 9999))
        assert a.order(SHOP, "O2").shares[1].amount == 1999  # 50% of 3999
    finally:
        a.close()
        b.close()


def test_read_models_see_each_stored_field_as_the_mapper_decodes_it(
    store_url: str, clock: Clock
) -> None:
    """The projection runner reads events through views of their stored JSON (decoding
    only the fields it uses); every field must come out as the library's mapper gives it."""
    from eventsourcing.persistence import JSONTranscoder
    from ledger.projections.decoding import event_reader

    app = build_application(store_url, clock)
    try:
        run(app, *team_commands(), c.PlaceOrder("p1", "O1", "c1", "carol", "CNY", tea()),
            c.PayOrder("pay1", "O1", "w1", 9999), c.CompleteOrder("k1", "O1"),
            c.RefundOrder("r1", "O1", "r1", (c.RefundLineRequest(1, 3333),), ""),
            c.ImportOrder("i1", "O2", "c2", "bob", "CNY", tea(2), "w2", True))
        read = event_reader(app.mapper)
        library = JSONTranscoder()
        app.register_transcodings(library)
        register_value_objects(library)
        stored = app.recorder.select_notifications(start=1, limit=1000)
        assert len(stored) > 10
        for item in stored:
            event = app.mapper.to_domain_event(item)
            view = read(item)
            assert view.originator_id == event.originator_id
            for name, value in vars(event).items():
                assert getattr(view, name) == value, (item.topic, name)
                assert type(getattr(view, name)) is type(value), (item.topic, name)
            # Events are written with orjson: byte for byte what the library's encoder writes.
            assert item.state == library.encode(library.decode(item.state)), item.topic
    finally:
        app.close()


def test_a_paid_event_from_before_backfills_were_marked_still_replays(
    store_url: str, clock: Clock
) -> None:
    """Order.Paid gained ``backdated``; events stored without it replay as not backdated,
    for the aggregate and for the read models alike."""
    import dataclasses

    import orjson
    from ledger.projections.decoding import event_reader

    app = build_application(store_url, clock)
    try:
        run(app, *team_commands(), c.PlaceOrder("p1", "O1", "c1", "carol", "CNY", tea()),
            c.PayOrder("pay1", "O1", "w1", 9999))
        [paid] = [n for n in app.recorder.select_notifications(start=1, limit=1000)
                  if n.topic.endswith("Order.Paid")]
        fields = orjson.loads(paid.state)
        assert fields.pop("backdated") is False
        old = dataclasses.replace(paid, state=orjson.dumps(fields))
        assert getattr(app.mapper.to_domain_event(old), "backdated", False) is False
        assert getattr(event_reader(app.mapper)(old), "backdated", False) is False
        order = app.mapper.to_domain_event(old).mutate(
            app.repository.get(paid.originator_id, version=paid.originator_version - 1))
        assert order is not None and order.backdated is False and order.status == "paid"
    finally:
        app.close()


def test_a_statement_line_closed_before_lines_had_buckets_still_decodes() -> None:
    """StatementLine gained ``bucket``; the lines of days closed before it decode as one line
    per account, every bucket together (an empty bucket)."""
    from ledger.adapters.transcodings import VALUE_OBJECTS, DataclassAsValues
    from ledger.domain.periods import StatementLine

    transcoding = DataclassAsValues(VALUE_OBJECTS["statement_line"], "statement_line")
    old = ["reseller:carol", "CNY", 0, [["payment", 1599]], 1599]
    assert transcoding.decode(old) == StatementLine(
        "reseller:carol", "CNY", 0, (("payment", 1599),), 1599, bucket="")


def test_value_objects_written_by_field_name_still_decode() -> None:
    """Value objects were stored as dicts of their fields before they were stored as lists
    of values: a log holding both replays the same."""
    from ledger.adapters.transcodings import VALUE_OBJECTS, DataclassAsValues
    from ledger.domain.money import Posting

    posting = Posting("reseller:carol", "frozen", "CNY", 1066)
    transcoding = DataclassAsValues(VALUE_OBJECTS["posting"], "posting")
    written = transcoding.encode(posting)
    assert written == ["reseller:carol", "frozen", "CNY", 1066]
    assert transcoding.decode(written) == posting
    assert transcoding.decode({"account": "reseller:carol", "bucket": "frozen",
                               "currency": "CNY", "amount": 1066}) == posting


def test_events_are_written_as_the_library_writes_them() -> None:
    """Events are written with orjson, and read with the library's decoder: the bytes must be
    the library encoder's, UUIDs (which orjson writes bare) tagged wherever events hold them."""
    from datetime import UTC, datetime
    from uuid import UUID, uuid4

    from eventsourcing.persistence import JSONTranscoder

    from ledger.adapters.transcodings import LedgerTranscoder
    from ledger.application.idempotency import ResultRef
    from ledger.domain.money import Posting
    from ledger.domain.plan import CommissionPlan, RateOverride

    library, ours = JSONTranscoder(), LedgerTranscoder()
    app = build_application("sqlite:///:memory:")
    try:
        for transcoder in (library, ours):
            app.register_transcodings(transcoder)
        register_value_objects(library)
    finally:
        app.close()
    at = datetime(2026, 11, 22, 8, 30, 0, 123456, tzinfo=UTC)
    state = {
        "timestamp": at, "owner": uuid4(), "note": "退款 – “partial”\n\t\\", "count": -3,
        "flag": True, "none": None, "chain": ("carol", "bob"), "nested": {"ids": ["a"]},
        "postings": (Posting("reseller:carol", "frozen", "CNY", 1599),),
        "result": ResultRef("order", uuid4(), 7, refund_id="r1"),
        "plan": CommissionPlan(2, at, (4000, 1000), (RateOverride("RANK", "vip", 1, 5000),)),
    }
    written = ours.encode(state)
    assert written == library.encode(state)
    back = library.decode(written)
    assert back["result"] == state["result"] and type(back["result"].aggregate_id) is UUID
    assert back["owner"] == state["owner"] and back["plan"] == state["plan"]


def asdict_fingerprint(command: c.Command, leave_out: set[str]) -> str:
    """A fingerprint as first written: dataclasses.asdict, less ``leave_out``, as JSON."""
    import dataclasses
    import hashlib
    import json

    body = {k: v for k, v in dataclasses.asdict(command).items() if k not in leave_out}
    text = json.dumps([type(command).__name__, body], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def test_an_undated_import_keeps_the_fingerprint_it_had_before_dates_existed() -> None:
    """Imports recorded before backfill dates existed are retried with the same answer."""
    import dataclasses
    from datetime import UTC, datetime

    undated = c.ImportOrder("import:O1", "O1", "c1", "carol", "CNY", tea(), "w1", True)
    before = asdict_fingerprint(
        undated, {"idempotency_key", "placed_at", "paid_at", "completed_at"})
    assert undated.fingerprint() == before
    dated = dataclasses.replace(undated, paid_at=datetime(2026, 11, 1, tzinfo=UTC))
    assert dated.fingerprint() != before


def _command_classes() -> list[type[c.Command]]:
    found: list[type[c.Command]] = []
    todo: list[type[c.Command]] = [c.Command]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_command_classes()).flatmap(st.builds))
def test_fingerprints_are_the_asdict_ones(command: c.Command) -> None:
    """Fingerprints are stored with every idempotency record: the faster way of taking a
    command apart must hash exactly what dataclasses.asdict gave."""
    unset_later = {k for k in command.added_later if getattr(command, k) is None}
    assert command.fingerprint() == asdict_fingerprint(
        command, {"idempotency_key", *command.derived, *unset_later})


def test_a_day_being_closed_takes_no_backfill_before_its_statement_is_drawn(
        app: LedgerApplication, clock: Clock) -> None:
    """CloseDay draws its statement from the read models, then closes with it. In between, a
    backfill dated into the day (which is over, but not yet closed) used to land in it, and
    the closed statement missed it. Closing now begins with a write that shuts the day, so
    the backfill is refused and the statement drawn after covers everything in the day."""
    finance = c.Caller("acme", "fin", "finance")
    run(app, *team_commands())
    clock.advance(days=4)  # now 2026-11-05 02:00 UTC; 2026-11-03 is over in Shanghai
    close = c.CloseDay("close-11-03", "2026-11-03")
    begun = app.run_batch([(finance, c.BeginClosingDay.first_step_of(close))])
    assert not isinstance(begun[0], BaseException)
    paid = datetime(2026, 11, 3, 4, 0, tzinfo=UTC)
    [backfill] = app.run_batch([(SHOP, c.ImportOrder(
        "import-H1", "H1", "c1", "carol", "CNY", tea(), payment_id="pay-H1", completed=False,
        placed_at=paid, paid_at=paid))])
    assert isinstance(backfill, LedgerError) and backfill.reason == "PERIOD_CLOSED"
    # The next day is not being closed: a backfill into it still lands.
    next_day = datetime(2026, 11, 4, 4, 0, tzinfo=UTC)
    run(app, c.ImportOrder("import-H2", "H2", "c1", "carol", "CNY", tea(), payment_id="pay-H2",
                           completed=False, placed_at=next_day, paid_at=next_day))
    # A retry of the first step changes nothing; the close then takes its statement.
    again = app.run_batch([(finance, c.BeginClosingDay.first_step_of(close))])
    assert not isinstance(again[0], BaseException) and again[0].replayed
    statement = DayStatement("2026-11-03", "Asia/Shanghai", (), 0, 0, 0, "0" * 64)
    run_as = app.run_batch([(finance, dataclasses.replace(close, statement=statement))])
    assert not isinstance(run_as[0], BaseException)
    # Once a day is closed, the next must be the day after: its first step says so too.
    [skipping] = app.run_batch([(finance, c.BeginClosingDay("other", "2026-11-02"))])
    assert isinstance(skipping, LedgerError) and skipping.reason == "PERIOD_OUT_OF_ORDER"


@pytest.mark.postgres
def test_batch_reads_look_aggregates_up_by_index_on_a_log_without_statistics(
    postgres_url: str,
) -> None:
    """A new deployment's log has no planner statistics until autovacuum gets to it. Written
    as a join, the batch's prefetch then scanned the whole log for every batch, so each batch
    cost more the longer the log; each read must be an index lookup per aggregate instead."""
    import psycopg
    from psycopg import sql

    from ledger.adapters.store_reads import (
        CURRENT_VERSIONS_POSTGRES,
        EVENTS_AFTER_POSTGRES,
    )

    app = build_application(postgres_url)
    recorder: Any = app.recorder
    table = sql.Identifier(recorder.datastore.schema, recorder.events_table_name)
    try:
        with psycopg.connect(postgres_url.split("?", 1)[0], autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(table))
            conn.execute(sql.SQL(
                "INSERT INTO {} (originator_id, originator_version, topic, state) "
                "SELECT gen_random_uuid(), v, 'x', '\\x00' FROM generate_series(1, 20000), "
                "generate_series(1, 2) AS v").format(table))
            ids = [row[0] for row in conn.execute(
                sql.SQL("SELECT originator_id FROM {} LIMIT 400").format(table))]
            for statement, params in ((EVENTS_AFTER_POSTGRES, (ids, [0] * len(ids))),
                                      (CURRENT_VERSIONS_POSTGRES, (ids,))):
                plan = "\n".join(row[0] for row in conn.execute(
                    sql.SQL("EXPLAIN " + statement).format(table=table), params))
                assert "Seq Scan" not in plan, plan
    finally:
        app.close()


def test_a_write_that_changes_nothing_waits_for_another_sqlite_writer(
        tmp_path: Path, clock: Clock) -> None:
    """A command that writes no event (a binding made again) still records its key: on
    SQLite it waits for another connection's write (the read models') to end, as any write
    does, instead of being refused at once with "database is locked"."""
    import sqlite3
    import threading

    path = tmp_path / "ledger.sqlite3"
    app = build_application(f"sqlite:///{path}", clock)
    try:
        run(app, c.EnrollReseller("e1", "alice", "", "", True),
            c.BindCustomer("b1", "c1", "alice"))
        other = sqlite3.connect(path, timeout=30, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another connection holds the write lock
        threading.Timer(0.3, other.commit).start()
        [again] = app.run_batch([(SHOP, c.BindCustomer("b2", "c1", "alice"))])
        other.close()
        assert isinstance(again, Outcome) and not again.replayed, again
        keys = app.idempotency_keys.recorded_keys([("acme", SHOP.principal, "b2")])
        assert [k.position for k in keys.values()] == [app.log_position()]
    finally:
        app.close()
