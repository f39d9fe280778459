"""The projection runner: follows the event log in order and keeps the read models current.

Each batch of events is applied in one transaction together with the position reached, so a
crash at any point neither skips nor applies an event twice: the next run starts after the
last committed position. The transaction first locks the position row, so several runners
(one per server, or `ledger project` processes) never apply the same event twice; whoever
holds the lock applies what is new, and the others find nothing left to do.

The log cannot show a later event before an earlier one: the PostgreSQL event store takes a
table lock for each insert (the eventsourcing library's default, kept on purpose) and SQLite
has one writer, so positions become visible in order and reading "everything after my
position" never jumps past an event that commits later.

What a batch does with each event is in batch.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import structlog
from eventsourcing.persistence import InterfaceError, OperationalError
from ledger.projections.batch import PROJECTED_TOPICS, Batch
from ledger.projections.clock import Calendar
from ledger.projections.db import SCHEMA_VERSION, Link, ProjectionDB, StoreUnavailable
from ledger.projections.decoding import event_reader
from ledger.projections.log_pages import LogPages
from ledger.projections.memory import DEFAULT_LIMIT, Memory

from ledger.application.ledger_app import LedgerApplication
from ledger.outages import Outage

log = structlog.get_logger(__name__)

NAME = "read-models"
# What a store that went away raises: the read models' own link, or the event store's (the
# library's pool, through which the log is read).
UNAVAILABLE = (StoreUnavailable, OperationalError, InterfaceError)
DEFAULT_BATCH = 1000


class ProjectionRunner:
    def __init__(
        self,
        app: LedgerApplication,
        database_url: str,
        *,
        calendar: Calendar | None = None,
        batch_size: int = DEFAULT_BATCH,
        memory_limit: int = DEFAULT_LIMIT,
    ) -> None:
        """``memory_limit``: entries the writers remember between batches
        (LEDGER_PROJECTION_CACHE)."""
        assert 1 <= batch_size <= 100_000
        self.app = app
        self.db = ProjectionDB(database_url)
        self.calendar = calendar or Calendar()
        self.batch_size = batch_size
        self.position = 0  # the last position this process saw committed
        self.applied = 0  # events this runner has applied (committed), for progress and tests
        self._read = event_reader(app.mapper)
        self._link = Link(self.db)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._advanced = threading.Condition()
        self._thread: threading.Thread | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._memory = Memory(limit=memory_limit)
        self._log = LogPages(app, PROJECTED_TOPICS)
        self._ahead: tuple[int, Future[tuple[Sequence[Any], int]]] | None = None
        self.outage = Outage("applying the log to the read models", logger=log,
                             operation="projection")

    # --- set-up ----------------------------------------------------------------------------

    def connection(self) -> Any:
        return self._link.connection()

    def setup(self, *, query_indexes: bool = True) -> None:
        """Creates the read models; rebuilds them if they were made by another schema version."""
        with self._link.connected() as conn:
            self.db.create(conn, query_indexes=query_indexes)
        with self._link.transaction() as cur:
            cur.execute("SELECT position, schema_version FROM proj_meta WHERE name = %s", (NAME,))
            row = cur.fetchone()
        if row is not None and int(row[1]) != SCHEMA_VERSION:
            log.warning("read models are from another schema version: rebuilding",
                        found=int(row[1]), wanted=SCHEMA_VERSION)
            self.reset()
            return
        if row is None:
            with self._link.transaction() as cur:
                cur.execute("INSERT INTO proj_meta (name, position, schema_version, updated_at) "
                            "VALUES (%s, 0, %s, %s) ON CONFLICT (name) DO NOTHING",
                            (NAME, SCHEMA_VERSION, int(time.time() * 1e6)))
        self.position = self.processed_position()

    def reset(self, *, bulk: bool = False) -> None:
        """Drops every read model and starts again from the beginning of the log.

        ``bulk``: the caller is about to apply the whole log (a rebuild), so the indexes only
        the queries use are left out until ``finish_bulk``."""
        with self._link.connected() as conn:
            self.db.drop(conn)
        self.position = 0
        self._memory.forget()
        self.setup(query_indexes=not bulk)

    def finish_bulk(self) -> None:
        """After a bulk rebuild: the queries' indexes, each built once from the whole table,
        and the planner's statistics."""
        with self._link.connected() as conn:
            self.db.create_indexes(conn)
            self.db.analyze(conn)

    # --- running ---------------------------------------------------------------------------

    def run_once(self) -> int:
        """Applies the next batch of events; returns how many log positions it covered."""
        with self._link.transaction() as cur:
            lock = " FOR UPDATE" if self.db.is_postgres else ""
            cur.execute(f"SELECT position FROM proj_meta WHERE name = %s{lock}", (NAME,))
            row = cur.fetchone()
            assert row is not None, "setup() first"
            start = position = int(row[0])
            notifications, reached = self._page(position)
            if reached == position + self.batch_size:
                self._read_ahead(reached)
            if reached > position:
                self._memory.begin(position)  # forgotten if another runner applied some
                batch, read = Batch(cur, self.calendar, self._memory), self._read
                events = [(read(n), n.topic.partition(":")[2], n.id) for n in notifications]
                batch.prefetch(events)
                for event, name, at in events:
                    assert at > position, "the log went backwards"
                    batch.apply(event, name, at)
                    position = at
                position = reached
                batch.flush()
                cur.execute("UPDATE proj_meta SET position = %s, updated_at = %s WHERE name = %s",
                            (position, int(time.time() * 1e6), NAME))
        if position > start:
            self._memory.committed(position)
            self.applied += len(notifications)
        self._advance(position)
        return position - start

    def _page(self, position: int) -> tuple[Sequence[Any], int]:
        """The projected events after ``position``, at most ``batch_size`` positions on, and
        the position they take the read models to: the end of that range, or the log's head
        as it was before the read if nearer, since every position up to a visible one is
        settled (see above).

        A page read ahead is used only if its range was whole: a shorter one was cut at a
        head read before later writes, and an empty one would make ``catch_up`` stop short
        of the log's head."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == position:
            page, reached = ahead[1].result()
            if reached == position + self.batch_size:
                return page, reached
        return self._select(position, self.app.log_position())

    def _select(self, position: int, head: int) -> tuple[Sequence[Any], int]:
        last = min(head, position + self.batch_size)
        return self._log.read(position + 1, last), max(last, position)

    def _read_ahead(self, position: int) -> None:
        """Reads the page after a whole one while this one is applied: the database works on
        the next page while Python works on this one. The page is a correct view of the log
        whenever it is read, since positions become visible in order (see above); a page
        read for a position that is not where the next batch starts is dropped."""
        if self._reader is None:
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="projections-read")
        self._ahead = (position, self._reader.submit(
            lambda: self._select(position, self.app.log_position())))

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Runs batches until the log has nothing new; returns how many log positions it
        covered (``applied`` counts the events among them that the read models use)."""
        total = 0
        while True:
            done = self.run_once()
            if not done:
                return total
            total += done
            if progress:
                progress(total)

    def _advance(self, position: int) -> None:
        with self._advanced:
            self.position = max(self.position, position)
            self._advanced.notify_all()

    def processed_position(self) -> int:
        with self._link.transaction(write=False) as cur:
            cur.execute("SELECT position FROM proj_meta WHERE name = %s", (NAME,))
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def log_head(self) -> int:
        return self.app.log_position()

    # --- in the background -----------------------------------------------------------------

    def start(self, poll_interval: float = 0.2, coalesce: float = 0.01) -> None:
        """Follows the log in a thread of its own (see ``follow``)."""
        self.setup()
        self._thread = threading.Thread(target=self.follow, args=(poll_interval, coalesce),
                                        name="projections", daemon=True)
        self._thread.start()

    def follow(self, poll_interval: float = 0.2, coalesce: float = 0.01,
               after_pass: Callable[[], None] | None = None) -> None:
        """Applies the log as it grows, until ``interrupt`` or ``stop``: woken by this
        server's commits (then waiting ``coalesce`` seconds, so that a busy log is applied in
        larger batches), and polling every ``poll_interval`` for other servers' commits.

        Never gives up: a batch that fails is tried again after a bounded backoff, so the
        read models come back by themselves within a second or so of the database.
        ``after_pass`` runs after each pass that reached the log's head."""
        while not self._stopping.is_set():
            try:
                self.catch_up()
                if after_pass is not None:
                    after_pass()
            except Exception as error:
                self._stopping.wait(self.failed(error))
                continue
            self.outage.succeeded()
            if self._wake.wait(poll_interval):
                self._stopping.wait(coalesce)
            self._wake.clear()

    def interrupt(self) -> None:
        """Makes ``follow`` return soon (safe from a signal handler)."""
        self._stopping.set()
        self._wake.set()

    def failed(self, error: Exception) -> float:
        """A batch failed (its transaction rolled back): forgets the page read ahead, which
        may have failed too, and returns how long to wait before trying again. A lost
        database is one outage, logged once; anything else is logged with its traceback,
        since no retry will cure it by itself."""
        self._ahead = None
        if isinstance(error, UNAVAILABLE):
            self.app.check_connections()  # the log is read through the event store's pool
        else:
            log.exception("projection batch failed; retrying", exc_info=error)
        return self.outage.failed(error)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self.interrupt()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._reader is not None:
            self._reader.shutdown(wait=True, cancel_futures=True)
            self._reader = None
            self._ahead = None
        self._link.discard()

    def wait_for(self, position: int, timeout: float) -> bool:
        """Blocks until this process has applied (or seen applied) ``position``."""
        deadline = time.monotonic() + timeout
        with self._advanced:
            while self.position < position:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._advanced.wait(min(left, 0.05))
        return True
