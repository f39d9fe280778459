"""Answers to writes carry typed fields (ResultRef: refund_id, published_version,
settled_count, already_imported), not one string of three meanings; and an idempotency record
stored before they existed still replays its first answer."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import JSONTranscoder, Transcoding

from ledger.application import commands as c
from ledger.application.idempotency import IdempotencyRecord, NewKey, ResultRef
from ledger.application.ledger_app import LedgerApplication, Outcome
from ledger.bootstrap import build_application
from ledger.domain.bills import WECHAT
from ledger.domain.order import OrderKey
from ledger.domain.reconciliation import TRADE
from tests.conftest import Clock

SHOP = c.Caller("acme", "shop-a", "storefront")
ADMIN = c.Caller("acme", "ops", "admin")
FINANCE = c.Caller("acme", "books", "finance")


def transcoder() -> JSONTranscoder:
    app = build_application("sqlite:///:memory:")
    try:
        transcoder = app.construct_transcoder()
    finally:
        app.close()
    assert isinstance(transcoder, JSONTranscoder)
    return transcoder


def stored(kind: str, n: int, version: int, detail: str) -> bytes:
    """An answer exactly as the code before typed answers wrote it (bytes taken from it)."""
    return (b'{"result":{"_type_":"result_ref","_data_":["%s",{"_type_":"uuid_hex","_data_":'
            b'"%032x"},%d,"%s"]}}' % (kind.encode(), n, version, detail.encode()))


def test_answers_stored_with_one_detail_string_read_back_into_their_typed_fields() -> None:
    read = transcoder().decode
    assert read(stored("order", 1, 7, "r1"))["result"] == ResultRef(
        "order", UUID(int=1), 7, refund_id="r1")
    assert read(stored("order", 1, 2, ""))["result"] == ResultRef("order", UUID(int=1), 2)
    assert read(stored("plan", 2, 3, "2"))["result"] == ResultRef(
        "plan", UUID(int=2), 3, published_version=2)
    assert read(stored("tax-table", 2, 3, "4"))["result"].published_version == 4
    assert read(stored("settlement", 3, 1, "4"))["result"] == ResultRef(
        "settlement", UUID(int=3), 1, settled_count=4)
    assert read(stored("bill", 4, 1, "duplicate"))["result"] == ResultRef(
        "bill", UUID(int=4), 1, already_imported=True)
    assert read(stored("bill", 4, 1, ""))["result"].already_imported is False
    # A day, a break id or a quarter only repeated the request: nothing of it is kept.
    assert read(stored("period", 5, 9, "2026-11-05"))["result"] == ResultRef(
        "period", UUID(int=5), 9)


def test_answers_stored_as_a_dict_of_fields_read_back_too() -> None:
    old = {"result": {"_type_": "result_ref", "_data_": {
        "kind": "order", "aggregate_id": {"_type_": "uuid_hex", "_data_": f"{1:032x}"},
        "version": 7, "detail": "r1"}}}
    assert transcoder().decode(orjson.dumps(old))["result"] == ResultRef(
        "order", UUID(int=1), 7, refund_id="r1")


def test_answers_are_written_with_their_typed_fields_and_read_back_equal() -> None:
    codec = transcoder()
    answer = ResultRef("plan", UUID(int=2), 3, published_version=2)
    written = codec.encode({"result": answer})
    assert orjson.loads(written)["result"]["_type_"] == "result_ref_v2"
    assert codec.decode(written)["result"] == answer


class WritesAnswersAsBefore(LedgerApplication):
    """Stores answers as the code before typed answers did: "result_ref", with the values
    kind, aggregate id, version and one detail string, in idempotency records in the log
    (as the code before the keys' table also did)."""

    name = LedgerApplication.name  # the same tables (the library names them after the class)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(AnswerWithDetail())

    def save_staged(self, aggregates: Sequence[Any], unchanged: Mapping[UUID, int] | None = None,
                    keys: Sequence[NewKey] = ()) -> list[Any]:
        records = [IdempotencyRecord(k.platform, k.principal, k.key, k.fingerprint, k.result)
                   for k in keys]
        return super().save_staged([*aggregates, *records], unchanged)


class AnswerWithDetail(Transcoding):
    type = ResultRef
    name = "result_ref"

    def encode(self, obj: ResultRef) -> list[Any]:
        detail = (obj.refund_id or (str(obj.published_version) if obj.published_version else "")
                  or ("duplicate" if obj.already_imported else "")
                  or (str(obj.settled_count) if obj.kind == "settlement" else ""))
        return [obj.kind, obj.aggregate_id, obj.version, detail]

    def decode(self, data: Any) -> ResultRef:
        raise AssertionError("only the application under test reads these")


def write(app: LedgerApplication, caller: c.Caller, command: c.Command) -> Outcome:
    [outcome] = app.run_batch([(caller, command)])
    assert isinstance(outcome, Outcome), outcome
    return outcome


def writes() -> list[tuple[c.Caller, c.Command]]:
    """One write of each kind whose answer names something, in an order that lets each run."""
    bill = c.ImportBill("b1", "2026-11-01", TRADE, WECHAT, hashlib.sha256(b"bill").hexdigest())
    return [
        (ADMIN, c.PublishPlan("plan", None, (4000, 1000), (), 7, 1000, False)),
        (SHOP, c.EnrollReseller("e1", "carol", "", "", True)),
        (SHOP, c.PlaceOrder("p1", "O1", "c1", "carol", "CNY",
                            (c.NewLine("tea", "drinks", 3, 3333, 2000, "S1"),))),
        (SHOP, c.PayOrder("pay1", "O1", "w1", 9999)),
        (SHOP, c.RefundOrder("r1", "O1", "refund-1", (c.RefundLineRequest(1, 3333),), "")),
        (SHOP, c.CompleteOrder("done1", "O1")),
        (ADMIN, c.RunSettlement("settle1", (OrderKey("shop-a", "O1"),))),
        (FINANCE, bill),
        (FINANCE, c.ImportBill("b2", bill.day, bill.kind, bill.fmt, bill.digest)),
    ]


def test_a_retry_of_a_write_answered_in_the_old_shape_replays_its_first_answer(
    store_url: str
) -> None:
    clock = Clock()
    old = build_application(store_url, clock, app_class=WritesAnswersAsBefore)
    first: dict[str, Outcome] = {}
    try:
        for caller, command in writes():
            if isinstance(command, c.RunSettlement):
                clock.advance(days=8)
            first[command.idempotency_key] = write(old, caller, command)
        records = [n for n in old.recorder.select_notifications(start=1, limit=1000)
                   if n.topic.endswith("IdempotencyRecord.Recorded")]
        assert records and all(b'"result_ref"' in n.state for n in records)
    finally:
        old.close()
    assert first["r1"].ref.refund_id == "refund-1"
    assert first["plan"].ref.published_version == 2
    assert first["settle1"].ref.settled_count == 1
    assert first["b2"].ref.already_imported and not first["b1"].ref.already_imported

    app = build_application(store_url, clock)
    try:
        for caller, command in writes():
            again = write(app, caller, command)
            assert again.replayed and again.ref == first[command.idempotency_key].ref
        refunded = write(app, SHOP, writes()[4][1])
        assert app.answer(refunded.ref).refunds["refund-1"].amount == 3333
        plan = write(app, ADMIN, writes()[0][1])
        assert app.answer(plan.ref).plan_version(plan.ref.published_version).level_rates_bps == (
            4000, 1000)
    finally:
        app.close()
