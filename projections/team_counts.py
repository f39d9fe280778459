"""Team counters whose reads stay cheap however large the team and however long its history.

A count that changes over time (a leader's team size, the members who joined in a month and
are still in the team, the members active in a month, a month's own sales and team GMV) is
kept twice: as its changes, each with its business time and log position, and as those
changes summed per hour and per six weeks of business time.

A read as of time T adds the six-week slots before T, the hours of T's six weeks before T's
hour, and the changes of T's own hour up to T: at most a thousand small index entries plus an
hour's changes, whatever the team's size and however long the history. A read as of a log
position P takes the read as of T and subtracts the changes recorded after P: it costs what
was recorded since P, never all of history.

Two widths, not more: every change is added to a slot of each width for each leader above the
member (the depth of the tree times the metrics), and those upserts are most of what bringing
a large tree in costs in PostgreSQL; each narrower width read costs at most a thousand rows.

Slots are UTC-based fixed widths of the changes' business time: they only partition the
sums, so any nesting partition serves, and none needs a time zone.
"""

from __future__ import annotations

from collections import defaultdict

from ledger.projections.clock import END_OF_TIME
from ledger.projections.db import Cursor, append_rows, upsert_rows

HOUR = 3_600_000_000  # microseconds
# Slot widths in microseconds, narrowest first; each divides the next.
WIDTHS = (HOUR, 1008 * HOUR)

# Metrics, each kept per (leader, bucket): the bucket is a month for those counted per month.
# An enrolment is one change (ENROLLED) for each leader above the new member whose team is
# large enough to be counted so (team_tree.COUNTED_FROM; a smaller one's enrolments are
# counted from its spans, see ``enrolled_into``); a team's size
# and its members who joined in a month are read from it and from what moves changed
# (TEAM_SIZE, JOINED): an enrolment adds to both alike, so keeping both for every enrolment
# wrote twice the rows bringing a tree in costs, for the same information.
ENROLLED = "enrolled"  # members who enrolled into the leader's team (bucket "")
TEAM_SIZE = "size"  # members moved into (+) or out of (-) the leader's team (bucket "")
JOINED = "joined"  # of those moved, who joined in the bucket's month
ACTIVE = "active"  # members in the team at the month's start who sold in the month


class CountWriter:
    """Buffers one batch's changes; ``flush`` writes the changes and adds them to the slot
    sums."""

    def __init__(self) -> None:
        self._changes: list[tuple[str, str, str, str, int, int, int]] = []
        self._slots: dict[tuple[str, str, str, str, int, int], int] = defaultdict(int)

    def add(self, platform: str, leader: str, metric: str, bucket: str, at: int,
            position: int, delta: int) -> None:
        if not delta:
            return
        self._changes.append((platform, leader, metric, bucket, at, position, delta))
        for level, width in enumerate(WIDTHS):
            self._slots[(platform, leader, metric, bucket, level, at // width)] += delta

    def flush(self, cur: Cursor) -> None:
        append_rows(cur, "proj_team_count_changes",
                    ("platform", "leader", "metric", "bucket", "at", "position", "delta"),
                    self._changes)
        upsert_rows(cur, "proj_team_counts",
                    ("platform", "leader", "metric", "bucket", "level", "slot", "delta"),
                    ("platform", "leader", "metric", "bucket", "level", "slot"),
                    "delta = proj_team_counts.delta + excluded.delta",
                    # Written even when a batch's changes net to nothing, so the rows are
                    # the same however the log was cut into batches (a rebuild equals the
                    # live read models).
                    [(*key, delta) for key, delta in self._slots.items()])
        self._changes.clear()
        self._slots.clear()


def count(cur: Cursor, platform: str, leader: str, metric: str, bucket: str,
          at: int = END_OF_TIME, position: int = END_OF_TIME) -> int:
    """The count as of business time ``at`` (inclusive) as recorded by log ``position``."""
    key = (platform, leader, metric, bucket)
    top = len(WIDTHS) - 1
    if at >= END_OF_TIME:
        ranges = [(top, None, None)]
        total = 0
    else:
        # The wide slots wholly before ``at``, then within the slot ``at`` falls in, the
        # narrower ones before it, down to the hour; then that hour's changes to ``at``.
        ranges = [(top, None, at // WIDTHS[top])]
        for level in range(top - 1, -1, -1):
            ratio = WIDTHS[level + 1] // WIDTHS[level]
            ranges.append((level, at // WIDTHS[level + 1] * ratio, at // WIDTHS[level]))
        cur.execute(
            "SELECT COALESCE(SUM(delta), 0) FROM proj_team_count_changes WHERE platform = %s "
            "AND leader = %s AND metric = %s AND bucket = %s AND at >= %s AND at <= %s",
            (*key, at // WIDTHS[0] * WIDTHS[0], at))
        total = int(cur.fetchone()[0])
    # A range of slots per width, each read through the key on its own: as one query with
    # the ranges OR'ed, PostgreSQL read every slot of the count and filtered them.
    parts, params = [], []
    for level, low, high in ranges:
        bounds, values = "", [*key, level]
        for bound, value in ((">=", low), ("<", high)):
            if value is not None:
                bounds += f" AND slot {bound} %s"
                values.append(value)
        params += values
        parts.append("SELECT delta FROM proj_team_counts WHERE platform = %s AND leader = %s "
                     f"AND metric = %s AND bucket = %s AND level = %s{bounds}")
    cur.execute(f"SELECT COALESCE(SUM(delta), 0) FROM ({' UNION ALL '.join(parts)}) AS slots",
                params)
    total += int(cur.fetchone()[0])
    if position < END_OF_TIME:  # less what was recorded after the position
        cur.execute(
            "SELECT COALESCE(SUM(delta), 0) FROM proj_team_count_changes WHERE platform = %s "
            "AND leader = %s AND metric = %s AND bucket = %s AND position > %s AND at <= %s",
            (*key, position, at))
        total -= int(cur.fetchone()[0])
    return total


def enrolled_into(cur: Cursor, platform: str, leader: str, at: int = END_OF_TIME,
                  position: int = END_OF_TIME) -> int:
    """The members who enrolled into the leader's team by ``at``, as recorded by
    ``position``. A leader with fewer spans than team_tree.COUNTED_FROM has them counted
    from its spans (each enrolment made one under every leader above the member); a larger
    one has them kept as changes and slot sums (``count``). Either read is bounded."""
    cur.execute("SELECT counted FROM proj_resellers WHERE platform = %s AND reseller_id = %s",
                (platform, leader))
    row = cur.fetchone()
    if row is not None and row[0]:
        return count(cur, platform, leader, ENROLLED, "", at, position)
    cur.execute(
        "SELECT COUNT(*) FROM proj_team_spans WHERE platform = %s AND ancestor = %s AND "
        "enrolled = 1 AND from_at <= %s AND from_pos <= %s", (platform, leader, at, position))
    return int(cur.fetchone()[0])


def team_size(cur: Cursor, platform: str, leader: str, at: int = END_OF_TIME,
              position: int = END_OF_TIME) -> int:
    """The members in the leader's team at ``at`` as recorded by ``position``: those who
    enrolled into it, plus those moves brought in, less those moves took out."""
    return (enrolled_into(cur, platform, leader, at, position)
            + count(cur, platform, leader, TEAM_SIZE, "", at, position))


def joined_in(cur: Cursor, platform: str, leader: str, month: str, start: int, end: int,
              at: int = END_OF_TIME, position: int = END_OF_TIME) -> int:
    """The members in the leader's team at ``at`` (as recorded by ``position``) who joined
    in ``month``, whose business times run from ``start`` to before ``end``: those who
    enrolled into the team in the month by ``at``, and what moves changed for that month."""
    moved = count(cur, platform, leader, JOINED, month, at, position)
    last = min(at, end - 1)
    if last < start:
        return moved
    return (moved + enrolled_into(cur, platform, leader, last, position)
            - enrolled_into(cur, platform, leader, start - 1, position))
