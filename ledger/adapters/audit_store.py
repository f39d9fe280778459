"""The platforms' audit trees in the store: one row per entry, written in the transaction that
writes the entry, and the signed heads and public keys beside them (docs/audit-format.md).

A row holds the entry's place in its platform's tree (``seq``), its place in the whole log
(``position``), when it was recorded, and its leaf hash followed by the hashes of the
complete subtrees it closes, so every node any proof needs is a point lookup and the tree
costs one row per entry. Appends happen under the log's insert lock (PostgreSQL) or the
file's write lock (SQLite): nothing else appends meanwhile, so a platform's next ``seq`` and
its frontier read inside the transaction are the truth.

SQL for both stores is written here, next to each other; the arithmetic is ledger.audit's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from ledger.audit.entries import Entry, StoredEntry, now_us
from ledger.audit.merkle import HASH_SIZE, Frontier, range_hash

ENTRIES = "audit_entries"
HEADS = "audit_heads"
KEYS = "audit_keys"
TABLES = (ENTRIES, HEADS, KEYS)

POSTGRES_DDL = (
    f"CREATE TABLE IF NOT EXISTS {{schema}}.{ENTRIES} ("
    "platform TEXT NOT NULL, seq BIGINT NOT NULL, position BIGINT NOT NULL UNIQUE, "
    "recorded_at BIGINT NOT NULL, hashes BYTEA NOT NULL, PRIMARY KEY (platform, seq))",
    f"CREATE TABLE IF NOT EXISTS {{schema}}.{HEADS} ("
    "platform TEXT NOT NULL, tree_size BIGINT NOT NULL, root BYTEA NOT NULL, "
    "signed_at BIGINT NOT NULL, key_id TEXT NOT NULL, signature BYTEA NOT NULL, "
    "reason TEXT NOT NULL, PRIMARY KEY (platform, tree_size, signed_at))",
    f"CREATE TABLE IF NOT EXISTS {{schema}}.{KEYS} ("
    "key_id TEXT PRIMARY KEY, public_key BYTEA NOT NULL, first_used_at BIGINT NOT NULL)",
)
SQLITE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {ENTRIES} ("
    "platform TEXT NOT NULL, seq INTEGER NOT NULL, position INTEGER NOT NULL UNIQUE, "
    "recorded_at INTEGER NOT NULL, hashes BLOB NOT NULL, PRIMARY KEY (platform, seq))",
    f"CREATE TABLE IF NOT EXISTS {HEADS} ("
    "platform TEXT NOT NULL, tree_size INTEGER NOT NULL, root BLOB NOT NULL, "
    "signed_at INTEGER NOT NULL, key_id TEXT NOT NULL, signature BLOB NOT NULL, "
    "reason TEXT NOT NULL, PRIMARY KEY (platform, tree_size, signed_at))",
    f"CREATE TABLE IF NOT EXISTS {KEYS} ("
    "key_id TEXT PRIMARY KEY, public_key BLOB NOT NULL, first_used_at INTEGER NOT NULL)",
)



def node_row(level: int, index: int) -> tuple[int, int]:
    """Where node (level, index) is stored: the seq of the leaf that completed it, and its
    offset in that row's hashes."""
    return ((index + 1) << level) - 1, level * HASH_SIZE


@dataclass
class _Tree:
    frontier: Frontier
    last_leaf: bytes  # the leaf hash of entry size-1 (b"" for an empty tree)


class TreeAppender:
    """Appends entries to their platforms' trees inside the transaction inserting them.

    Remembers each platform's frontier from one batch to the next, and checks it, under the
    lock, against the platform's last stored leaf: another server's appends, or a batch of
    this one that was rolled back, make it read the frontier again (log n point lookups)."""

    def __init__(self, postgres: bool, schema: str = "") -> None:
        self.postgres = postgres
        self.schema = schema
        self._trees: dict[str, _Tree] = {}
        self.mark = "%s" if postgres else "?"

    def table(self, name: str) -> str:
        return f'"{self.schema}".{name}' if self.postgres else name

    # --- appending (inside the writing transaction) ------------------------------------

    def append(self, cur: Any, platforms: Sequence[str], positions: Sequence[int],
               events: Sequence[StoredEvent]) -> None:
        assert len(platforms) == len(positions) == len(events), "one platform per event"
        if not events:
            return
        recorded_at = now_us()
        trees = self._current(cur, list(dict.fromkeys(platforms)))
        rows: list[tuple[str, int, int, int, bytes]] = []
        for platform, position, event in sorted(zip(platforms, positions, events,
                                                     strict=True), key=lambda r: r[1]):
            tree = trees[platform]
            seq = tree.frontier.size
            leaf = Entry(platform, seq, position, recorded_at, _uuid(event.originator_id),
                         event.originator_version, event.topic, event.state).leaf_hash()
            completed = tree.frontier.append(leaf)
            tree.last_leaf = leaf
            rows.append((platform, seq, position, recorded_at, leaf + b"".join(completed)))
        self._insert(cur, rows)
        self._trees.update(trees)

    def _current(self, cur: Any, platforms: list[str]) -> dict[str, _Tree]:
        """Each platform's tree as stored now (under the insert lock)."""
        last = self._last_leaves(cur, platforms)
        out = {}
        for platform in platforms:
            size, leaf = last.get(platform, (0, b""))
            known = self._trees.get(platform)
            if known is not None and known.frontier.size == size and known.last_leaf == leaf:
                out[platform] = _Tree(known.frontier.copy(), leaf)
            else:
                out[platform] = _Tree(self.frontier(cur, platform, size), leaf)
        return out

    def _last_leaves(self, cur: Any, platforms: list[str]) -> dict[str, tuple[int, bytes]]:
        """platform → (tree size, the last entry's leaf hash), for non-empty trees."""
        if self.postgres:
            cur.execute(
                f"SELECT p, e.seq, substring(e.hashes FROM 1 FOR {HASH_SIZE}) "
                "FROM unnest(%s::text[]) AS p CROSS JOIN LATERAL (SELECT seq, hashes FROM "
                f"{self.table(ENTRIES)} WHERE platform = p ORDER BY seq DESC LIMIT 1) e",
                (platforms,))
        else:
            marks = ",".join("?" * len(platforms))
            cur.execute(
                f"SELECT platform, seq, substr(hashes, 1, {HASH_SIZE}) FROM {ENTRIES} AS a "
                f"WHERE platform IN ({marks}) AND seq = (SELECT MAX(seq) FROM {ENTRIES} "
                "WHERE platform = a.platform)", platforms)
        return {_col(r, 0): (int(_col(r, 1)) + 1, bytes(_col(r, 2))) for r in cur.fetchall()}

    def _insert(self, cur: Any, rows: list[tuple[str, int, int, int, bytes]]) -> None:
        if self.postgres:
            cur.execute(
                f"INSERT INTO {self.table(ENTRIES)} (platform, seq, position, recorded_at, "
                "hashes) SELECT * FROM unnest(%b::text[], %b::bigint[], %b::bigint[], "
                "%b::bigint[], %b::bytea[])",
                tuple(list(column) for column in zip(*rows, strict=True)))
        else:
            cur.executemany(
                f"INSERT INTO {ENTRIES} (platform, seq, position, recorded_at, hashes) "
                "VALUES (?, ?, ?, ?, ?)", rows)

    # --- reading nodes ------------------------------------------------------------------

    def nodes(self, cur: Any, platform: str, wanted: Iterable[tuple[int, int]]
              ) -> dict[tuple[int, int], bytes]:
        """The stored nodes (level, index) → hash, in one query."""
        wanted = list(dict.fromkeys(wanted))
        if not wanted:
            return {}
        seqs = sorted({node_row(level, index)[0] for level, index in wanted})
        if self.postgres:
            cur.execute(f"SELECT seq, hashes FROM {self.table(ENTRIES)} WHERE platform = %s "
                        "AND seq = ANY(%s)", (platform, seqs))
        else:
            rows_out = []
            for start in range(0, len(seqs), 500):
                chunk = seqs[start:start + 500]
                cur.execute(f"SELECT seq, hashes FROM {ENTRIES} WHERE platform = ? AND seq IN "
                            f"({','.join('?' * len(chunk))})", (platform, *chunk))
                rows_out += cur.fetchall()
            rows = {int(_col(r, 0)): bytes(_col(r, 1)) for r in rows_out}
            return _pick(wanted, rows)
        rows = {int(_col(r, 0)): bytes(_col(r, 1)) for r in cur.fetchall()}
        return _pick(wanted, rows)

    def frontier(self, cur: Any, platform: str, size: int) -> Frontier:
        """The frontier of the platform's first ``size`` entries, from the stored nodes."""
        needed: list[tuple[int, int]] = []
        Frontier.of(size, lambda level, index: needed.append((level, index)) or b"")
        found = self.nodes(cur, platform, needed)
        return Frontier.of(size, lambda level, index: found[(level, index)])

    def root(self, cur: Any, platform: str, size: int) -> bytes:
        return self.frontier(cur, platform, size).root()

    def with_nodes(self, cur: Any, platform: str, compute: Any) -> Any:
        """Runs ``compute(node)`` (a proof, a range hash) twice: once to learn which nodes
        it reads, then with them all fetched in one query."""
        needed: list[tuple[int, int]] = []

        def record(level: int, index: int) -> bytes:
            needed.append((level, index))
            return bytes(HASH_SIZE)

        compute(record)
        found = self.nodes(cur, platform, needed)
        return compute(lambda level, index: found[(level, index)])

    def range_root(self, cur: Any, platform: str, size: int) -> bytes:
        return self.with_nodes(cur, platform, lambda node: range_hash(0, size, node))


def _pick(wanted: list[tuple[int, int]], rows: dict[int, bytes]) -> dict[tuple[int, int], bytes]:
    out = {}
    for level, index in wanted:
        seq, offset = node_row(level, index)
        hashes = rows.get(seq)
        if hashes is None or len(hashes) < offset + HASH_SIZE:
            raise LookupError(f"node ({level}, {index}) is not stored (entry {seq})")
        out[(level, index)] = hashes[offset:offset + HASH_SIZE]
    return out


def _col(row: Any, i: int) -> Any:
    """A column of a row, whether the cursor gives tuples or dicts (the library's
    PostgreSQL cursors give dicts)."""
    return list(row.values())[i] if isinstance(row, dict) else row[i]


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


# --- reading the trees, and the heads and keys beside them --------------------------------


class AuditLog:
    """The audit tables of an application's store, for the API and the CLI."""

    def __init__(self, app: Any) -> None:
        from eventsourcing.postgres import PostgresApplicationRecorder

        self.recorder = app.recorder
        self.postgres = isinstance(self.recorder, PostgresApplicationRecorder)
        self.trees: TreeAppender = self.recorder.trees
        self.events_table = (f'"{self.recorder.datastore.schema}".'
                             f"{self.recorder.events_table_name}" if self.postgres
                             else self.recorder.events_table_name)
        self.m = "%s" if self.postgres else "?"

    def _cursor(self, *, write: bool = False) -> Any:
        """A cursor in a transaction of its own (rows as tuples)."""
        from contextlib import contextmanager

        @contextmanager
        def cursor() -> Any:
            if self.postgres:
                from psycopg.rows import tuple_row

                with self.recorder.datastore.get_connection() as conn, conn.transaction(), \
                        conn.cursor(row_factory=tuple_row) as cur:
                    yield cur
            else:
                with self.recorder.datastore.transaction(commit=write) as cur:
                    yield cur

        return cursor()

    def tree_size(self, platform: str, position: int | None = None) -> int:
        """How many entries the platform has (recorded at or before log ``position``)."""
        m, t = self.m, self.trees.table(ENTRIES)
        with self._cursor() as cur:
            if position is None:
                cur.execute(f"SELECT MAX(seq) FROM {t} WHERE platform = {m}", (platform,))
            else:
                cur.execute(f"SELECT MAX(seq) FROM {t} WHERE platform = {m} AND position <= {m}",
                            (platform, position))
            row = cur.fetchone()
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    def entries(self, platform: str, from_seq: int, limit: int) -> list[StoredEntry]:
        """The platform's entries from ``from_seq``, with their events (an entry whose event
        is gone from the log is left out: the gap shows in the seqs)."""
        return [StoredEntry(int(r[0]), int(r[1]), int(r[2]), _uuid(r[4]), int(r[5]), r[6],
                            bytes(r[7]), bytes(r[3])[:HASH_SIZE])
                for r in self._entry_rows(platform, from_seq, limit, "JOIN")]

    def root(self, platform: str, size: int) -> bytes:
        with self._cursor() as cur:
            return self.trees.range_root(cur, platform, size)

    def compute(self, platform: str, compute: Any) -> Any:
        """``compute(node)`` over the platform's stored nodes (a proof, a root)."""
        with self._cursor() as cur:
            return self.trees.with_nodes(cur, platform, compute)

    def leaf(self, platform: str, seq: int) -> bytes:
        return self.compute(platform, lambda node: node(0, seq))

    def heads(self, platform: str) -> list[tuple[Any, ...]]:
        """(tree_size, root, signed_at, key_id, signature, reason), by size then time."""
        with self._cursor() as cur:
            cur.execute(f"SELECT tree_size, root, signed_at, key_id, signature, reason FROM "
                        f"{self.trees.table(HEADS)} WHERE platform = {self.m} "
                        "ORDER BY tree_size, signed_at", (platform,))
            return [(int(r[0]), bytes(r[1]), int(r[2]), r[3], bytes(r[4]), r[5])
                    for r in cur.fetchall()]

    def add_head(self, platform: str, tree_size: int, root: bytes, signed_at: int,
                 key_id: str, signature: bytes, reason: str) -> None:
        m = self.m
        with self._cursor(write=True) as cur:
            cur.execute(f"INSERT INTO {self.trees.table(HEADS)} (platform, tree_size, root, "
                        f"signed_at, key_id, signature, reason) VALUES ({m}, {m}, {m}, {m}, "
                        f"{m}, {m}, {m})",
                        (platform, tree_size, root, signed_at, key_id, signature, reason))

    def keys(self) -> dict[str, bytes]:
        with self._cursor() as cur:
            cur.execute(f"SELECT key_id, public_key FROM {self.trees.table(KEYS)} "
                        "ORDER BY first_used_at")
            return {r[0]: bytes(r[1]) for r in cur.fetchall()}

    def add_key(self, key_id: str, public_key: bytes) -> None:
        """Publishes a signing key (once: a key already known is left as it is)."""
        m = self.m
        with self._cursor(write=True) as cur:
            cur.execute(f"INSERT INTO {self.trees.table(KEYS)} (key_id, public_key, "
                        f"first_used_at) VALUES ({m}, {m}, {m}) ON CONFLICT (key_id) DO NOTHING",
                        (key_id, public_key, now_us()))

    def platforms(self) -> list[str]:
        with self._cursor() as cur:
            cur.execute(f"SELECT DISTINCT platform FROM {self.trees.table(ENTRIES)}")
            return sorted(r[0] for r in cur.fetchall())

    def entries_with_events(self, platform: str, from_seq: int, limit: int
                            ) -> list[tuple[Any, ...]]:
        """(seq, position, recorded_at, hashes, stream id, version, topic, state) by seq;
        the event's columns None where its entry's event is gone from the log."""
        return self._entry_rows(platform, from_seq, limit, "LEFT JOIN")

    def _entry_rows(self, platform: str, from_seq: int, limit: int, join: str
                    ) -> list[tuple[Any, ...]]:
        m = self.m
        with self._cursor() as cur:
            cur.execute(
                f"SELECT a.seq, a.position, a.recorded_at, a.hashes, e.originator_id, "
                f"e.originator_version, e.topic, e.state FROM {self.trees.table(ENTRIES)} a "
                f"{join} {self.events_table} e ON "
                f"e.{'notification_id' if self.postgres else 'rowid'} = a.position "
                f"WHERE a.platform = {m} AND a.seq >= {m} ORDER BY a.seq LIMIT {m}",
                (platform, from_seq, limit))
            return cur.fetchall()

    def events_outside_trees(self, limit: int = 10) -> list[tuple[int, str]]:
        """(position, topic) of events in the log that no tree holds: written around the
        ledger, not by it."""
        position = "notification_id" if self.postgres else "rowid"
        with self._cursor() as cur:
            cur.execute(
                f"SELECT e.{position}, e.topic FROM {self.events_table} e LEFT JOIN "
                f"{self.trees.table(ENTRIES)} a ON a.position = e.{position} "
                f"WHERE a.position IS NULL ORDER BY e.{position} LIMIT {self.m}", (limit,))
            return [(int(r[0]), r[1]) for r in cur.fetchall()]
