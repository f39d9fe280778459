"""The rules of waiting out an outage and of judging the read models' progress, without any
process or database: the fault tests show them at work."""

from __future__ import annotations

from typing import Any

from ledger.api.health import Progress
from ledger.outages import MAX_BACKOFF, Outage


class Lines:
    """A logger that keeps what it is told."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def warning(self, message: str, **_: Any) -> None:
        self.lines.append(("warning", message))

    def info(self, message: str, **_: Any) -> None:
        self.lines.append(("info", message))


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends() -> None:
    lines = Lines()
    outage = Outage("reading", logger=lines)
    for _ in range(50):
        outage.failed(ConnectionError("refused"))
    assert outage.ongoing
    outage.succeeded()
    outage.succeeded()
    assert [level for level, _ in lines.lines] == ["warning", "info"]
    assert not outage.ongoing


def test_retries_back_off_but_never_wait_longer_than_the_bound() -> None:
    outage = Outage("reading", logger=Lines())
    waits = [outage.failed(OSError()) for _ in range(40)]
    assert waits == sorted(waits)
    assert waits[0] < waits[3]
    assert max(waits) == MAX_BACKOFF
    outage.succeeded()
    assert outage.failed(OSError()) == waits[0]  # a new outage starts from the shortest wait


def test_read_models_behind_a_growing_log_are_stalled_only_after_the_limit() -> None:
    progress = Progress(max_stall=30)
    assert not progress.stalled(head=10, processed=5, now=0)
    assert not progress.stalled(head=20, processed=5, now=29)
    assert progress.stalled(head=20, processed=5, now=31)
    assert not progress.stalled(head=20, processed=6, now=32)  # moving again


def test_read_models_at_the_head_are_never_stalled_however_long_nothing_is_written() -> None:
    progress = Progress(max_stall=30)
    assert not progress.stalled(head=7, processed=7, now=0)
    assert not progress.stalled(head=7, processed=7, now=3_600)
