"""What every command is: a frozen dataclass with an idempotency key, a fingerprint that
tells a retry from a different request under the same key, and ``violations()``, the checks
on its shape."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from ledger.application.commands.checks import Violations, check_id

_FIELDS: dict[type, tuple[str, ...]] = {}
_SCALARS = (str, int, bool, float, type(None))


def plain(value: Any) -> Any:
    """``dataclasses.asdict`` as JSON sees it (tuples as lists), without asdict's deep copy
    of every value: fingerprints hash this, and asdict was a sixteenth of a bulk import."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is tuple or kind is list:
        return [plain(v) for v in value]
    if kind is dict:
        return {k: plain(v) for k, v in value.items()}
    names = _FIELDS.get(kind)
    if names is None and dataclasses.is_dataclass(kind):
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(kind))
    if names is None:
        return value
    return {name: plain(getattr(value, name)) for name in names}


@dataclass(frozen=True)
class Command:
    idempotency_key: str

    # Fields the ledger fills in from its own state before running the command (not what the
    # client asked): left out of the fingerprint, so a retry still matches.
    derived: ClassVar[tuple[str, ...]] = ()
    # Fields added after commands were first recorded, left out of the fingerprint while
    # unset: a retry of a write recorded before they existed still matches.
    added_later: ClassVar[tuple[str, ...]] = ()

    def fingerprint(self) -> str:
        """Identifies the request apart from its idempotency key."""
        skip = {"idempotency_key", *self.derived}
        body = {k: v for k, v in plain(self).items()
                if k not in skip and not (v is None and k in self.added_later)}
        text = json.dumps([type(self).__name__, body], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def violations(self) -> Violations:
        v: Violations = []
        check_id(v, "idempotency_key", self.idempotency_key)
        return v
