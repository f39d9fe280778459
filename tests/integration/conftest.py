"""Fixtures of the integration layer (the store-backed ones shared with e2e are in
tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Clock
from tests.integration.stack import Stack, running_stack


@pytest.fixture
def stack(store_url: str, clock: Clock, tmp_path: Path) -> Iterator[Stack]:
    """The application, the group commit and the read models running, with no API."""
    with running_stack(store_url, clock, tmp_path) as parts:
        yield parts
