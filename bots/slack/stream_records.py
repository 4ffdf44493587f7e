"""Which messages a turn's native stream started: recorded durably, so that a process started after a
crash finds the stream a dead one left open.

Slack gives a streamed message no metadata until it is stopped (chat.startStream takes none; only
chat.stopStream does), and its reference documents no field of a message in conversations.replies or
conversations.history that tells a message still streaming from any other. What it does document is
the ``ts`` that chat.startStream answers. So each started message is written to the table
``durabot_slack_streams`` of the deployment's database (``DURABOT_DATABASE_URL``) right after its start
and before anything is appended to it; the delivery's lookup then knows the turn's streamed messages
by their ts, whichever process started them.

Rows are small and few (one per streamed message) and are kept ``KEEP`` days, long past a stream's
lifetime of minutes and any delivery retry; older ones are deleted now and then as new ones come in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, DateTime, Engine, Integer, String, Table, delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bots.core.database import engine_for, metadata

__all__ = ["StreamRecords"]

log = logging.getLogger(__name__)

KEEP = timedelta(days=7)
PRUNE_EVERY = 3600.0  # seconds between two deletions of old rows by one process

streams_table = Table(
    "durabot_slack_streams", metadata,
    Column("conversation_id", String(300), primary_key=True),
    Column("turn_id", String(200), primary_key=True),
    Column("ts", String(64), primary_key=True),
    Column("channel", String(64), nullable=False),
    Column("segment", Integer, nullable=False),  # which message of the answer (0, then rollovers)
    Column("started", DateTime(timezone=True), nullable=False, index=True),
)


class StreamRecords:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        streams_table.create(engine, checkfirst=True)
        self._pruned = float("-inf")
        # The same start seen twice is recorded once: SQLite and PostgreSQL skip the duplicate in the
        # insert itself (a savepoint per insert cost more than the insert); other databases catch it.
        self._insert_ignoring = None
        if engine.dialect.name in ("sqlite", "postgresql"):
            dialect_insert = sqlite_insert if engine.dialect.name == "sqlite" else postgresql_insert
            self._insert_ignoring = dialect_insert(streams_table).on_conflict_do_nothing()

    @classmethod
    def open(cls, url: str) -> "StreamRecords":
        return cls(engine_for(url))

    async def started(self, conversation_id: str, turn_id: str, segment: int, channel: str, ts: str) -> None:
        """A message of the turn's answer started streaming (recorded before anything is appended)."""
        prune = time.monotonic() - self._pruned >= PRUNE_EVERY
        if prune:
            self._pruned = time.monotonic()

        def write() -> None:
            now = datetime.now(UTC)
            row = {"conversation_id": conversation_id, "turn_id": turn_id, "ts": ts, "channel": channel,
                   "segment": segment, "started": now}
            with self.engine.begin() as conn:
                if prune:
                    conn.execute(delete(streams_table).where(streams_table.c.started < now - KEEP))
                if self._insert_ignoring is not None:  # one statement, no savepoint around it
                    conn.execute(self._insert_ignoring, row)
                    return
                try:
                    with conn.begin_nested():
                        conn.execute(streams_table.insert(), row)
                except IntegrityError:
                    pass  # recorded already (the same start seen twice)

        try:
            await asyncio.to_thread(write)
        except SQLAlchemyError as exc:  # best effort: the stream goes on, known then by what it shows
            log.warning("streamed message %s of turn %s not recorded in the database (%s)", ts, turn_id,
                        type(exc).__name__)

    async def of_turn(self, conversation_id: str, turn_id: str) -> set[str]:
        """The ts of every message the turn's answer started streaming, in any process."""

        def read() -> set[str]:
            with self.engine.connect() as conn:
                rows = conn.execute(select(streams_table.c.ts).where(
                    streams_table.c.conversation_id == conversation_id, streams_table.c.turn_id == turn_id))
                return {str(r[0]) for r in rows}

        try:
            return await asyncio.to_thread(read)
        except SQLAlchemyError as exc:  # the thread is still read; a stream is then known by what it shows
            log.warning("streamed messages of turn %s not read from the database (%s)", turn_id,
                        type(exc).__name__)
            return set()
