"""The team tree as the read models keep it, built from the event log: each reseller's
sponsor, depth, direct downline count and team size (everyone below). Every sponsor link
(proj_links) and every span between a member and a leader above it (proj_team_spans) is
kept with the time and log position it began and ended, so the tree can be read as it
stood at a past moment. The team numbers over it are written by team.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from ledger.projections.clock import END_OF_TIME, Calendar, from_micros, micros
from ledger.projections.day_balances import execute_planned_now
from ledger.projections.db import Cursor, append_rows, upsert_rows
from ledger.projections.memory import Memory
from ledger.projections.team_counts import ENROLLED, JOINED, TEAM_SIZE, CountWriter

from ledger.domain.team import MAX_TREE_DEPTH

# A leader's enrolments are counted from its spans until it has this many (a read counts at
# most this many index entries); from then on they are kept as count changes and slot sums
# too (team_counts.py), so that a large team's count still costs a bounded read. Most pairs
# of a member and a leader above it have a small team's leader: writing a change and two
# slot sums for each of those was most of what bringing a tree in cost PostgreSQL.
COUNTED_FROM = 256
NODE_COLUMNS = ("reseller_id, sponsor_id, depth, direct_count, team_size, rank, enrolled_at, "
                "spans_made, counted")
PREFETCH_CHUNK = 400  # resellers per query: SQLite takes at most 999 parameters


@dataclass
class Node:
    reseller_id: str
    sponsor_id: str
    depth: int
    direct_count: int
    team_size: int
    rank: str
    enrolled_at: int
    spans_made: int = 0  # spans ever begun with this reseller as the leader above
    counted: int = 0  # 1 once its enrolments are kept as count changes (COUNTED_FROM)


def sponsor_as_of(cur: Cursor, platform: str, reseller_id: str, at: int) -> str | None:
    """The sponsor as it stood at ``at`` ('' at the top of the tree): the last link made by
    then, in log order. None when the reseller had not enrolled by then."""
    cur.execute(
        "SELECT sponsor_id FROM proj_links WHERE platform = %s AND reseller_id = %s AND at <= %s"
        " ORDER BY position DESC LIMIT 1", (platform, reseller_id, at))
    row = cur.fetchone()
    return row[0] if row else None


def chain_above(sponsor: str, sponsor_of: Callable[[str], str | None], below: str
                ) -> list[str]:
    """``sponsor`` (the sponsor of ``below``; '' for none), its sponsor, … up to the top of
    the tree, each found with ``sponsor_of``."""
    out: list[str] = []
    for _ in range(MAX_TREE_DEPTH):
        if not sponsor:
            return out
        out.append(sponsor)
        sponsor = sponsor_of(sponsor) or ""
    raise AssertionError(f"the tree above {below} is deeper than {MAX_TREE_DEPTH}")


class TreeWriter:
    """Applies one batch's changes to the tree. Nodes read are remembered (``Memory``); what
    is written is buffered and written with a few statements (``write``); a move, which asks
    the database for a subtree, first writes out the tree as it stands. Team counts that the
    tree changes (enrolments, team sizes) go to the batch's ``counts``."""

    def __init__(self, cur: Cursor, calendar: Calendar, memory: Memory,
                 counts: CountWriter) -> None:
        self.cur = cur
        self.calendar = calendar
        self.counts = counts
        self._nodes = memory.nodes
        self._dirty_nodes: dict[tuple[str, str], Node] = {}
        self._links: list[tuple[str, str, str, int, int]] = []
        # New spans (ancestor, member, distance, since, position, enrolled) not written yet:
        # a member enrolled in this batch, under every ancestor it has; or a subtree moved.
        self._spans: list[tuple[str, str, str, int, int, int, int]] = []
        # Leaders whose enrolments up to a log position are to be counted from their spans
        # once those are written: they reached COUNTED_FROM in this batch.
        self._to_count: list[tuple[str, str, int]] = []

    def node(self, platform: str, reseller_id: str) -> Node | None:
        key = (platform, reseller_id)
        if key not in self._nodes:
            self.cur.execute(
                f"SELECT {NODE_COLUMNS} FROM proj_resellers WHERE platform = %s "
                "AND reseller_id = %s",
                key,
            )
            row = self.cur.fetchone()
            self._nodes[key] = Node(*row) if row else None
        return self._nodes[key]

    def prefetch_uplines(self, platform: str, reseller_ids: Iterable[str],
                         levels: int = MAX_TREE_DEPTH + 1) -> None:
        """Brings the resellers and everyone above them into memory, a query per level for
        the whole batch. Past the memory's bound, a batch's new members' sponsors are mostly
        not remembered, and reading each of them and then each of its sponsors a query
        apiece made bringing a million-member tree in three times as costly per member as
        a small one. Only what memory lacks is read, by its primary key. ``levels``: how
        far up (1: the resellers themselves)."""
        wanted = list(dict.fromkeys(reseller_ids))
        for _ in range(levels):
            missing, above = [], []
            for rid in wanted:
                key = (platform, rid)
                if key not in self._nodes:
                    missing.append(rid)
                elif (node := self._nodes[key]) is not None and node.sponsor_id:
                    above.append(node.sponsor_id)
            for start in range(0, len(missing), PREFETCH_CHUNK):
                chunk = missing[start:start + PREFETCH_CHUNK]
                # Planned for this execution: psycopg prepares a statement run five times,
                # and the generic plan PostgreSQL then keeps, made while a rebuild's table
                # was small, scanned the whole table per query (a rebuild at 100k members
                # took 2.7 times as long).
                execute_planned_now(
                    self.cur,
                    f"SELECT {NODE_COLUMNS} FROM proj_resellers WHERE platform = %s AND "
                    f"reseller_id IN ({', '.join(['%s'] * len(chunk))})", (platform, *chunk))
                found = {row[0]: Node(*row) for row in self.cur.fetchall()}
                for rid in chunk:
                    node = self._nodes[(platform, rid)] = found.get(rid)
                    if node is not None and node.sponsor_id:
                        above.append(node.sponsor_id)
            if not above:
                return
            wanted = list(dict.fromkeys(above))

    def _save(self, platform: str, n: Node) -> None:
        self._nodes[(platform, n.reseller_id)] = n
        self._dirty_nodes[(platform, n.reseller_id)] = n

    def write(self) -> None:
        if self._dirty_nodes:
            upsert_rows(
                self.cur, "proj_resellers", ("platform", "reseller_id", "sponsor_id", "depth",
                                             "direct_count", "team_size", "rank", "enrolled_at",
                                             "spans_made", "counted"),
                ("platform", "reseller_id"),
                "sponsor_id = excluded.sponsor_id, depth = excluded.depth, "
                "direct_count = excluded.direct_count, team_size = excluded.team_size, "
                "rank = excluded.rank, spans_made = excluded.spans_made, "
                "counted = excluded.counted",
                [(platform, n.reseller_id, n.sponsor_id, n.depth, n.direct_count, n.team_size,
                  n.rank, n.enrolled_at, n.spans_made, n.counted)
                 for (platform, _), n in self._dirty_nodes.items()])
            self._dirty_nodes.clear()
        append_rows(self.cur, "proj_team_spans",
                    ("platform", "ancestor", "member", "distance", "from_at", "from_pos",
                     "enrolled", "to_at", "to_pos"),
                    [(*span, END_OF_TIME, END_OF_TIME) for span in self._spans])
        self._spans.clear()
        self._count_from_spans()
        append_rows(self.cur, "proj_links",
                    ("platform", "reseller_id", "sponsor_id", "at", "position"), self._links)
        self._links.clear()

    def ancestors(self, platform: str, reseller_id: str) -> list[str]:
        """The sponsor, the sponsor's sponsor, … up to the top of the tree."""

        def sponsor_of(rid: str) -> str | None:
            node = self.node(platform, rid)
            return node.sponsor_id if node else None

        return chain_above(sponsor_of(reseller_id) or "", sponsor_of, reseller_id)

    def _resize(self, platform: str, ids: list[str], delta: int, position: int) -> list[bool]:
        """Each of ``ids`` gains (or loses) ``delta`` members; for each, whether its
        enrolments were already counted as changes before (see ``_counting``)."""
        counted = []
        for rid in ids:
            n = self.node(platform, rid)
            assert n is not None, rid
            n.team_size += delta
            counted.append(self._counting(platform, n, max(delta, 0), position))
            self._save(platform, n)
        return counted

    def _counting(self, platform: str, n: Node, new_spans: int, position: int) -> bool:
        """Records ``new_spans`` more spans under ``n``; True if its enrolments were already
        counted as changes. When this makes it reach COUNTED_FROM, its enrolments recorded up
        to ``position`` are counted from its spans once they are written (``write``): the
        rows are then those counting every enrolment as it came would have made, at the
        same log position whatever the batches, so a rebuild equals the live models."""
        was = bool(n.counted)
        n.spans_made += new_spans
        if not was and n.spans_made >= COUNTED_FROM:
            n.counted = 1
            self._to_count.append((platform, n.reseller_id, position))
        return was

    def _count_from_spans(self) -> None:
        for platform, leader, position in self._to_count:
            self.cur.execute(
                "SELECT from_at, from_pos FROM proj_team_spans WHERE platform = %s AND "
                "ancestor = %s AND enrolled = 1 AND from_pos <= %s",
                (platform, leader, position))
            for at, pos in self.cur.fetchall():
                self.counts.add(platform, leader, ENROLLED, "", int(at), int(pos), 1)
        self._to_count.clear()

    def _membership(self, platform: str, leaders: list[str], size: int,
                    joined: dict[str, int], at: int, position: int, sign: int) -> None:
        """``size`` members (``joined``: how many of them joined in each month) come into
        (sign +1) or leave (-1) the teams of ``leaders`` at ``at``."""
        for leader in leaders:
            self.counts.add(platform, leader, TEAM_SIZE, "", at, position, sign * size)
            for month, n in joined.items():
                self.counts.add(platform, leader, JOINED, month, at, position, sign * n)

    def enrolled(self, platform: str, reseller_id: str, sponsor_id: str, at_dt: datetime,
                 position: int) -> None:
        at = micros(at_dt)
        sponsor = self.node(platform, sponsor_id) if sponsor_id else None
        self._save(platform, Node(reseller_id, sponsor_id, sponsor.depth + 1 if sponsor else 0,
                                  0, 0, "", at))
        self._link(platform, reseller_id, sponsor_id, at, position)
        if sponsor is not None:
            sponsor.direct_count += 1
            self._save(platform, sponsor)
        upline = self.ancestors(platform, reseller_id)
        counted = self._resize(platform, upline, +1, position)
        for distance, leader in enumerate(upline, start=1):
            self._spans.append((platform, leader, reseller_id, distance, at, position, 1))
            if counted[distance - 1]:
                self.counts.add(platform, leader, ENROLLED, "", at, position, 1)

    def moved(self, platform: str, reseller_id: str, to_sponsor: str, at_dt: datetime,
              position: int) -> None:
        at = micros(at_dt)
        node = self.node(platform, reseller_id)
        assert node is not None
        below = self.descendants(platform, reseller_id)  # (member, distance); tree written
        moving = [(reseller_id, 0), *below]
        size = len(moving)
        joined = self._joined_months(platform, [m for m, _ in moving])
        old_upline = self.ancestors(platform, reseller_id)
        if node.sponsor_id:
            old = self.node(platform, node.sponsor_id)
            assert old is not None
            old.direct_count -= 1
            self._save(platform, old)
        self._resize(platform, old_upline, -size, position)
        self._membership(platform, old_upline, size, joined, at, position, -1)
        self._close_spans(platform, old_upline, [m for m, _ in moving], at, position)
        new_sponsor = self.node(platform, to_sponsor) if to_sponsor else None
        new_depth = new_sponsor.depth + 1 if new_sponsor else 0
        shift = new_depth - node.depth
        node.sponsor_id = to_sponsor
        node.depth = new_depth
        self._save(platform, node)
        if new_sponsor is not None:
            new_sponsor.direct_count += 1
            self._save(platform, new_sponsor)
        new_upline = self.ancestors(platform, reseller_id)
        self._resize(platform, new_upline, +size, position)
        self._membership(platform, new_upline, size, joined, at, position, +1)
        self._spans += [(platform, leader, member, distance + below_distance, at, position, 0)
                        for distance, leader in enumerate(new_upline, start=1)
                        for member, below_distance in moving]
        self._link(platform, reseller_id, to_sponsor, at, position)
        if shift:
            for rid, _ in below:
                n = self.node(platform, rid)
                assert n is not None
                n.depth += shift
                self._save(platform, n)

    def rank_set(self, platform: str, reseller_id: str, rank: str) -> None:
        node = self.node(platform, reseller_id)
        assert node is not None
        node.rank = rank
        self._save(platform, node)

    def descendants(self, platform: str, reseller_id: str) -> list[tuple[str, int]]:
        """Everyone below the reseller now, with how many levels below: its open spans
        (the tree is written first)."""
        self.write()
        self.cur.execute(
            "SELECT member, distance FROM proj_team_spans WHERE platform = %s AND "
            "ancestor = %s AND to_pos = %s", (platform, reseller_id, END_OF_TIME))
        return [(row[0], int(row[1])) for row in self.cur.fetchall()]

    def _joined_months(self, platform: str, members: list[str]) -> dict[str, int]:
        """How many of ``members`` joined in each month."""
        joined: dict[str, int] = defaultdict(int)
        for member in members:
            n = self.node(platform, member)
            assert n is not None, member
            joined[self.calendar.month(from_micros(n.enrolled_at))] += 1
        return joined

    def _close_spans(self, platform: str, leaders: list[str], members: list[str], at: int,
                     position: int) -> None:
        """The spans between ``leaders`` and ``members`` end at ``at``: written at once (the
        tree was written just before, and moves are rare)."""
        if not leaders:
            return
        leader_marks = ", ".join(["%s"] * len(leaders))
        for start in range(0, len(members), 500):
            chunk = members[start:start + 500]
            member_marks = ", ".join(["%s"] * len(chunk))
            self.cur.execute(
                "UPDATE proj_team_spans SET to_at = %s, to_pos = %s WHERE platform = %s AND "
                f"to_pos = %s AND ancestor IN ({leader_marks}) AND member IN ({member_marks})",
                (at, position, platform, END_OF_TIME, *leaders, *chunk))

    def ancestors_at(self, platform: str, member: str, at: int) -> list[str]:
        """Everyone above ``member`` at business time ``at``, nearest first: its spans then
        (with this batch's new ones), one query whatever the depth."""
        self.cur.execute(
            "SELECT ancestor, distance FROM proj_team_spans WHERE platform = %s AND "
            "member = %s AND from_at <= %s AND to_at > %s", (platform, member, at, at))
        found = [(int(distance), ancestor) for ancestor, distance in self.cur.fetchall()]
        found += [(distance, leader) for p, leader, m, distance, since, _, _ in self._spans
                  if p == platform and m == member and since <= at]
        return [ancestor for _, ancestor in sorted(found)]

    def _link(self, platform: str, reseller_id: str, sponsor_id: str, at: int,
              position: int) -> None:
        self._links.append((platform, reseller_id, sponsor_id, at, position))

    def sponsor_at(self, platform: str, reseller_id: str, at: int) -> str | None:
        """``sponsor_as_of``, looking first at this batch's links, which come after the
        table's and are not written yet."""
        latest: tuple[int, str] | None = None
        for p, rid, sponsor, when, position in self._links:
            if p == platform and rid == reseller_id and when <= at and (
                    latest is None or position > latest[0]):
                latest = (position, sponsor)
        if latest is not None:
            return latest[1]
        return sponsor_as_of(self.cur, platform, reseller_id, at)

    def first_sponsor(self, platform: str, reseller_id: str) -> str | None:
        """The sponsor the reseller enrolled under; None if never enrolled."""
        self.cur.execute("SELECT sponsor_id FROM proj_links WHERE platform = %s AND "
                         "reseller_id = %s ORDER BY position LIMIT 1", (platform, reseller_id))
        row = self.cur.fetchone()
        if row is not None:
            return str(row[0])
        return next((sponsor for p, rid, sponsor, _, _ in self._links
                     if p == platform and rid == reseller_id), None)

    def ancestors_then(self, platform: str, reseller_id: str, at: int) -> list[str]:
        """Everyone above the reseller as the tree stood at ``at``, each member taken as
        first enrolled where ``at`` is before their enrolment (as the split does). Only for
        a payment recorded before its seller's enrolment (logs from before backfills were
        checked): otherwise the spans at ``at`` say the same in one query
        (``ancestors_at``), since every sponsor joined before the member under them."""

        def sponsor_then(rid: str) -> str | None:
            sponsor = self.sponsor_at(platform, rid, at)
            return sponsor if sponsor is not None else self.first_sponsor(platform, rid)

        return chain_above(sponsor_then(reseller_id) or "", sponsor_then, reseller_id)
