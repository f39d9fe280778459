"""How the domain's value objects are written into stored events (JSON, via eventsourcing)."""

from __future__ import annotations

import dataclasses
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import JSONTranscoder, Transcoding

from ledger.application.idempotency import ResultRef, from_detail
from ledger.domain.money import Posting
from ledger.domain.order import OrderKey
from ledger.domain.payee import SealedIdentity
from ledger.domain.periods import DayStatement, StatementLine
from ledger.domain.plan import CommissionPlan, RateOverride
from ledger.domain.quarters import QuarterLine, QuarterReport
from ledger.domain.reconciliation import BillLine
from ledger.domain.refunds import RefundLine, RefundRecord
from ledger.domain.split import LineItem, Share, UplineMember
from ledger.domain.tax_table import TaxBracket, TaxTable


class DataclassAsValues(Transcoding):
    """A frozen dataclass as the list of its field values; JSON lists come back as tuples.

    A class may gain fields only at the end, with defaults, for old events to still read."""

    def __init__(self, cls: type, name: str) -> None:
        self.type = cls
        self.name = name
        fields = dataclasses.fields(cls)
        self._fields = [f.name for f in fields if f.init]
        # Stored values were checked when first made, so decoding may fill the fields in
        # directly: the frozen __init__ sets each through object.__setattr__, several times
        # slower, and decoding is the larger part of replaying the log. Only for classes
        # whose __init__ does nothing more (no __post_init__, no fields it leaves out).
        self._direct = (not hasattr(cls, "__post_init__") and len(self._fields) == len(fields)
                        and not hasattr(cls, "__slots__"))
        # Fields declared as plain scalars never hold a JSON list, so need no tuplify check.
        self._scalars = all(str(f.type) in SCALARS for f in fields)

    def encode(self, obj: Any) -> list[Any]:
        """The field values in declaration order: a Paid event holds dozens of shares and
        postings, and field names written into each one were over half of its bytes."""
        return [getattr(obj, name) for name in self._fields]

    def decode(self, data: list[Any] | dict[str, Any]) -> Any:
        """Positional (as written now) or by field name (as written before)."""
        pairs = zip(self._fields, data, strict=False) if type(data) is list else data.items()
        values = dict(pairs) if self._scalars else {
            k: tuplify(v) if type(v) is list else v for k, v in pairs}
        if self._direct and len(values) == len(self._fields):
            obj = object.__new__(self.type)
            obj.__dict__.update(values)
            return obj
        return self.type(**values)


SCALARS = frozenset({"str", "int", "bool", "float", "<class 'str'>", "<class 'int'>",
                     "<class 'bool'>", "<class 'float'>"})


def tuplify(value: Any) -> Any:
    """JSON has only lists; the value objects hold tuples, nested ones included."""
    return tuple(tuplify(v) for v in value) if isinstance(value, list) else value


VALUE_OBJECTS: dict[str, type] = {
    "posting": Posting,
    "line_item": LineItem,
    "share": Share,
    "upline_member": UplineMember,
    "refund_line": RefundLine,
    "refund": RefundRecord,
    "rate_override": RateOverride,
    "commission_plan": CommissionPlan,
    "result_ref_v2": ResultRef,  # "result_ref": see ResultRefWithDetail
    "statement_line": StatementLine,
    "day_statement": DayStatement,
    "order_key": OrderKey,
    "bill_line": BillLine,
    "sealed_identity": SealedIdentity,
    "tax_bracket": TaxBracket,
    "tax_table": TaxTable,
    "quarter_line": QuarterLine,
    "quarter_report": QuarterReport,
}


class LedgerTranscoder(JSONTranscoder):
    """The library's JSON transcoder, writing with orjson: the same bytes, several times
    faster (encoding events and idempotency records was a tenth of the writer's time).

    orjson writes dataclasses, datetimes and UUIDs natively; the first two are passed back
    to the library's hook (``_encode_obj``) so they are tagged as the library tags them, and
    UUIDs, which orjson cannot pass back, are tagged here wherever events hold them (at the
    top of an event and inside value objects). A test checks every stored event's bytes
    against the library's own encoder. Reading stays with the library's decoder, whose
    per-object hook revives the tagged objects."""

    OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME

    def __init__(self) -> None:
        super().__init__()
        # The store names this class (TRANSCODER_TOPIC, see config.event_store_env), and the
        # library then adds its own transcodings (UUID, datetime…): the application never
        # names its encoding, which lives here, in the adapters.
        register_value_objects(self)

    def encode(self, obj: Any) -> bytes:
        if type(obj) is dict and any(type(v) is UUID for v in obj.values()):
            obj = {k: self._encode_obj(v) if type(v) is UUID else v for k, v in obj.items()}
        return orjson.dumps(obj, default=self._encode_obj, option=self.OPTIONS)

    def _encode_obj(self, o: Any) -> dict[str, Any]:
        tagged = super()._encode_obj(o)
        data = tagged["_data_"]
        if type(data) is list and any(type(v) is UUID for v in data):
            tagged["_data_"] = [super(LedgerTranscoder, self)._encode_obj(v)
                                if type(v) is UUID else v for v in data]
        return tagged


class ResultRefWithDetail(Transcoding):
    """Answers as idempotency records stored them before ResultRef had typed fields: named
    "result_ref", the values kind, aggregate id, version and ``detail`` (one string carrying
    a refund id, a version or a count; earlier still, a dict of the same fields). Read only:
    answers are written as "result_ref_v2", and a retry of a request answered before then
    still replays its first answer (``from_detail`` gives the detail its typed field)."""

    type = ResultRef
    name = "result_ref"
    FIELDS = ("kind", "aggregate_id", "version", "detail")

    def encode(self, obj: Any) -> Any:
        raise AssertionError("answers are written as result_ref_v2")

    def decode(self, data: list[Any] | dict[str, Any]) -> ResultRef:
        values = dict(zip(self.FIELDS, data, strict=False)) if type(data) is list else data
        return from_detail(**values)


def register_value_objects(transcoder: JSONTranscoder) -> None:
    # First, so that the type's own transcoding, registered after it, writes ResultRefs.
    transcoder.register(ResultRefWithDetail())
    for name, cls in VALUE_OBJECTS.items():
        transcoder.register(DataclassAsValues(cls, name))
