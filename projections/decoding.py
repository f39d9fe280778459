"""Events as the read models read them: straight from the stored JSON, field by field.

The eventsourcing library's mapper turns every field of an event into objects before anyone
looks at it: a Paid event's shares and upline chain as well as its postings. The read
models use a few fields of each event, and that decoding was a third of a rebuild. A view
parses the stored JSON once (in C, with orjson, and no per-object hook) and revives a field
(datetimes, postings…) with the application's own transcodings only when the read models ask
for it, so each value is exactly what the mapper would have given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import Mapper, StoredEvent, Transcoding


def revive(value: Any, names: Mapping[str, Transcoding]) -> Any:
    """A JSON value as the library's transcoder decodes it (innermost objects first)."""
    if type(value) is dict:
        if len(value) == 2 and "_type_" in value and "_data_" in value:
            return names[value["_type_"]].decode(revive(value["_data_"], names))
        return {k: revive(v, names) if type(v) in CONTAINERS else v for k, v in value.items()}
    if type(value) is list:
        # Scalars are most of the values (every field of every posting): no call for them.
        return [revive(v, names) if type(v) in CONTAINERS else v for v in value]
    return value


CONTAINERS = (dict, list)


class EventView:
    """One stored event's fields, each decoded on first use and kept."""

    __slots__ = ("_fields", "_names", "_revived", "originator_id", "originator_version")

    def __init__(self, stored: StoredEvent, names: Mapping[str, Transcoding]) -> None:
        originator_id = stored.originator_id
        self.originator_id = (originator_id if isinstance(originator_id, UUID)
                              else UUID(originator_id))
        self.originator_version = stored.originator_version
        self._fields: dict[str, Any] = orjson.loads(stored.state)
        self._names = names
        self._revived: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self._revived[name]
        except KeyError:
            pass
        try:
            raw = self._fields[name]
        except KeyError:
            raise AttributeError(name) from None
        value = self._revived[name] = revive(raw, self._names)
        return value


def event_reader(mapper: Mapper[UUID]) -> Callable[[StoredEvent], Any]:
    """Views over stored events, or the mapper's own events where the store is encrypted or
    compressed, or the transcoder is not the JSON one the views understand."""
    names = getattr(mapper.transcoder, "names", None)
    if mapper.cipher or mapper.compressor or names is None:
        return mapper.to_domain_event
    return lambda stored: EventView(stored, names)
