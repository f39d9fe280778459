"""Past the memory's bound the read models' writer forgets most of the tree, and a batch of
new members enrolling under sponsors it no longer holds must not read each sponsor and each
of theirs a query apiece (projections/team_tree.py ``prefetch_uplines``): the batch's
uplines are read a query per level, by primary key, whatever the batch's size. Likewise a
batch of sales reads when each seller was first paid in the month in one query, not one per
sale (projections/team.py ``prefetch_starts``)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.projections.clock import Calendar
from ledger.projections.db import ProjectionDB
from ledger.projections.memory import Memory
from ledger.projections.team import TeamWriter
from ledger.projections.team_counts import CountWriter
from ledger.projections.team_tree import TreeWriter

START = datetime(2026, 1, 1, tzinfo=UTC)


class CountingCursor:
    """A real cursor that counts the statements sent through it."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur
        self.statements = 0

    def execute(self, sql: str, params: Any = ()) -> Any:
        self.statements += 1
        return self.cur.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cur, name)


def test_a_batchs_uplines_are_read_a_query_per_level_not_per_member(tmp_path: Path) -> None:
    db = ProjectionDB(f"sqlite:///{tmp_path / 'models.sqlite3'}")
    conn = db.connect()
    db.create(conn)
    draw = random.Random(5)
    sponsors = [""] + [f"m{draw.randrange(n)}" if n > 12 else f"m{n - 1}" for n in range(1, 600)]
    with db.transaction(conn) as cur:
        writer = TreeWriter(cur, Calendar(), Memory(), CountWriter())
        for n, sponsor in enumerate(sponsors):
            writer.enrolled("p", f"m{n}", sponsor, START + timedelta(minutes=n), n + 1)
        writer.write()
        uplines = {f"m{n}": writer.ancestors("p", f"m{n}") for n in range(len(sponsors))}
    depth = max(map(len, uplines.values()))
    batch = draw.sample(sorted(uplines), 300)
    with db.transaction(conn) as cur:
        counting = CountingCursor(cur)
        forgetful = TreeWriter(counting, Calendar(), Memory(), CountWriter())
        forgetful.prefetch_uplines("p", batch)
        prefetching = counting.statements
        assert {m: forgetful.ancestors("p", m) for m in batch} == {m: uplines[m] for m in batch}
    assert counting.statements == prefetching  # everything the walks needed was read
    assert prefetching <= depth + 1 < len(batch)
    conn.close()


def test_when_a_batchs_sellers_were_first_paid_is_read_in_one_query(tmp_path: Path) -> None:
    db = ProjectionDB(f"sqlite:///{tmp_path / 'models.sqlite3'}")
    conn = db.connect()
    db.create(conn)
    paid = {(f"m{n}", "2026-01"): 1_000 + n for n in range(0, 300, 3)}
    with db.transaction(conn) as cur:
        for (member, month), at in paid.items():
            cur.execute("INSERT INTO proj_active_first (platform, member, month, at) VALUES "
                        "(%s, %s, %s, %s)", ("p", member, month, at))
    keys = [(f"m{n}", "2026-01") for n in range(300)]
    with db.transaction(conn) as cur:
        counting = CountingCursor(cur)
        team = TeamWriter(counting, Calendar(), Memory())
        team.prefetch_starts("p", keys)
        assert counting.statements == 1
        assert {k: team._starts[("p", *k)] for k in keys} == {k: paid.get(k) for k in keys}
    conn.close()
