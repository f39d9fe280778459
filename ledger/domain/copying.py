"""Cheap copies of aggregates.

The writer copies an aggregate before a batch first changes it (the cache's objects never
change: they may be answers still being sent, or needed again if the batch is decided again;
see application/unit_of_work.py). ``copy.deepcopy`` would also copy every frozen value
object and event inside, which cannot change anyway; an aggregate's own state only changes
through its containers (lists, dicts, sets) and a few mutable records, so copying those is
enough.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any


def copy_value(value: Any) -> Any:
    if isinstance(value, list):
        return [copy_value(v) for v in value]
    if isinstance(value, dict):
        return {k: copy_value(v) for k, v in value.items()}
    if isinstance(value, set):
        return set(value)
    if dataclasses.is_dataclass(value) and not type(value).__dataclass_params__.frozen:  # type: ignore[attr-defined]
        return copy.copy(value)
    return value  # str, int, datetime, UUID, tuples and frozen dataclasses never change


class CheapCopy:
    """Mixed into aggregates: ``copy.deepcopy`` copies only what can change."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        clone = object.__new__(type(self))
        clone.__dict__.update({k: copy_value(v) for k, v in self.__dict__.items()})
        return clone
