"""Pages of the event log, as the read models read it: a range of positions at a time.

A page is every projected event whose position lies in a range, read in position order. The
range, not a row limit, bounds a page, so the database never looks past it: asked for
"the next N rows of these kinds" it looked at the whole rest of the log for them, and
on a table it had no statistics for yet (a new log, a fresh benchmark) it collected all of
them and sorted them on disk, once per page.

On PostgreSQL the page is read with a query of our own over the library's events table (its
documented layout): results in binary, so the events' bytes are not sent as hex and decoded
again, and as plain tuples rather than the library's dict rows and notification objects,
which together cost as much as the database itself. The query walks the position index in
order; the planner is told not to gather the range in a bitmap and sort it, a plan it picks
when it wrongly thinks the table is small. SQLite goes through the library's recorder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application


class Entry:
    """One stored event and its position: what the library's ``Notification`` holds."""

    __slots__ = ("id", "originator_id", "originator_version", "state", "topic")

    def __init__(self, id: int, originator_id: UUID, originator_version: int, topic: str,
                 state: bytes) -> None:
        self.id = id
        self.originator_id = originator_id
        self.originator_version = originator_version
        self.topic = topic
        self.state = state


class LogPages:
    def __init__(self, app: Application[UUID], topics: Sequence[str]) -> None:
        from eventsourcing.postgres import PostgresApplicationRecorder

        self.recorder: Any = app.recorder
        self.topics = list(topics)
        self._statement: Any = None
        if isinstance(self.recorder, PostgresApplicationRecorder):
            from psycopg.sql import SQL, Identifier

            self._statement = SQL(
                "SELECT notification_id, originator_id, originator_version, topic, state "
                "FROM {} WHERE notification_id BETWEEN %s AND %s AND topic = ANY(%s) "
                "ORDER BY notification_id").format(
                Identifier(self.recorder.datastore.schema, self.recorder.events_table_name))

    def read(self, first: int, last: int) -> Sequence[Any]:
        """The projected events at positions ``first`` to ``last``, in order; each has
        ``id``, ``topic``, ``originator_id``, ``originator_version`` and ``state``."""
        if last < first:
            return []
        if self._statement is None:
            return self.recorder.select_notifications(
                start=first, stop=last, limit=last - first + 1, topics=self.topics)
        from psycopg.rows import tuple_row

        with self.recorder.datastore.get_connection() as conn, conn.transaction():
            cur = conn.cursor(binary=True, row_factory=tuple_row)
            cur.execute("SET LOCAL enable_bitmapscan = off")
            cur.execute(self._statement, (first, last, self.topics))
            return [Entry(*row) for row in cur.fetchall()]
