"""Redis backends for separate processes: the event bus on Redis Streams, the transcript in a hash.

Both are caches of what Temporal records, so Redis may restart or vanish: publishing then drops events
(live streaming degrades; answers still arrive through the workflow) and the transcript is refilled
from the workflow's bounded copy. A short circuit breaker keeps a dead Redis from slowing every token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncIterator

from .events import decode_event, encode_event
from .store import decode_message, encode_message
from .types import AgentEvent, ChatMessage

log = logging.getLogger(__name__)


def _client(url: str) -> Any:
    import redis.asyncio as redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url, socket_connect_timeout=0.5, socket_timeout=5.0, retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


class _Breaker:
    """After a failure, fail fast for ``cooldown`` seconds instead of waiting on a dead server."""

    def __init__(self, cooldown: float = 3.0) -> None:
        self.cooldown = cooldown
        self.open_until = 0.0

    def check(self) -> None:
        if time.monotonic() < self.open_until:
            raise ConnectionError("redis marked unavailable (recent failure)")

    def fail(self) -> None:
        self.open_until = time.monotonic() + self.cooldown

    def ok(self) -> None:
        self.open_until = 0.0


class RedisEventBus:
    """One Redis stream per conversation turn, capped at ``maxlen`` entries and expiring after ``ttl``.

    Publishing is a group commit: one writer task sends every event waiting at that moment in one
    pipeline (one network write and one read for all of them), and the events that arrive while it is
    in flight go in the next. An idle bus sends an event at once, so the first token is never held
    back; under load the events of many turns share a round trip instead of one each. Events keep
    the order ``publish`` was called in, and each caller learns its own event's offset or error.
    """

    def __init__(self, url: str, *, prefix: str = "durabot:ev:", maxlen: int = 5000, ttl: int = 3600,
                 block_ms: int = 1000, max_batch: int = 500) -> None:
        self.url = url
        self.prefix = prefix
        self.maxlen = maxlen
        self.ttl = ttl
        self.block_ms = block_ms
        self.max_batch = max_batch
        self._redis = _client(url)
        self._breaker = _Breaker()
        self._waiting: list[tuple[str, str, asyncio.Future[str]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.round_trips = 0  # pipelines sent, for tests and benchmarks

    async def publish(self, stream: str, event: AgentEvent) -> None:
        self._breaker.check()
        event.ts = event.ts or time.time()
        loop = asyncio.get_running_loop()
        if self._writer is not None and self._writer.get_loop() is not loop:
            # A bus used again from another event loop (asyncio.run per call): what the old loop left
            # waiting can no longer be answered there.
            self._waiting = [w for w in self._waiting if w[2].get_loop() is loop]
            self._writer = None
        done: asyncio.Future[str] = loop.create_future()
        self._waiting.append((self.prefix + stream, encode_event(event), done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        event.offset = await done

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key, data, _ in batch:
                        pipe.xadd(key, {"e": data}, maxlen=self.maxlen, approximate=True)
                    for key in dict.fromkeys(key for key, _, _ in batch):  # once per stream and batch
                        pipe.expire(key, self.ttl)
                    self.round_trips += 1
                    results = await pipe.execute()
            except BaseException as exc:
                self._breaker.fail()
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(exc if isinstance(exc, Exception) else ConnectionError(
                            "publishing was interrupted"))
                if not isinstance(exc, Exception):  # the task is cancelled: fail the rest too, then stop
                    for _, _, done in self._waiting:
                        if not done.done():
                            done.set_exception(ConnectionError("publishing was interrupted"))
                    self._waiting = []
                    raise
                continue
            self._breaker.ok()
            for (_, _, done), offset in zip(batch, results):
                if not done.done():  # its publisher may have been cancelled meanwhile
                    done.set_result(offset.decode() if isinstance(offset, bytes) else str(offset))

    async def subscribe(
        self, stream: str, after: str | None = None, *, idle_timeout: float | None = None
    ) -> AsyncIterator[AgentEvent]:
        key = self.prefix + stream
        last = after or "0-0"
        idle_since = time.monotonic()
        while True:
            try:
                reply = await self._redis.xread({key: last}, count=200, block=self.block_ms)
            except Exception as exc:
                if idle_timeout is not None and time.monotonic() - idle_since > idle_timeout:
                    return
                log.debug("event bus read failed (%s); retrying", exc)
                await asyncio.sleep(0.5)
                continue
            if not reply:
                if idle_timeout is not None and time.monotonic() - idle_since > idle_timeout:
                    return
                continue
            idle_since = time.monotonic()
            for _key, entries in reply:
                for entry_id, fields in entries:
                    last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    yield decode_event(fields[b"e"] if b"e" in fields else fields["e"], offset=last)

    async def close(self) -> None:
        if self._writer is not None and not self._writer.done():
            try:  # what is waiting still goes out
                await asyncio.wait_for(asyncio.shield(self._writer), 5)
            except Exception:
                pass
        await self._redis.aclose()


class RedisTranscriptStore:
    """Messages of a conversation in one hash (sequence number -> JSON), ``keep`` most recent."""

    def __init__(self, url: str, *, prefix: str = "durabot:tr:", keep: int = 1000, ttl: int = 30 * 86400) -> None:
        self.prefix = prefix
        self.keep = keep
        self.ttl = ttl
        self._redis = _client(url)
        self._breaker = _Breaker()

    async def write(self, conversation_id: str, first_seq: int, messages: list[ChatMessage]) -> None:
        if messages:
            await self.write_read(conversation_id, first_seq, messages, 0, 0)

    async def read(self, conversation_id: str, start_seq: int, end_seq: int) -> list[ChatMessage] | None:
        return await self.write_read(conversation_id, 0, [], start_seq, end_seq)

    async def write_read(self, conversation_id: str, first_seq: int, messages: list[ChatMessage],
                         start_seq: int, end_seq: int) -> list[ChatMessage] | None:
        """``write`` then ``read`` in one round trip (an LLM round does both)."""
        if not messages and end_seq <= start_seq:
            return []
        self._breaker.check()
        key = self.prefix + conversation_id
        try:
            if messages:
                end = first_seq + len(messages)
                stale = [str(s) for s in range(max(0, end - self.keep - len(messages)), max(0, end - self.keep))]
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.hset(key, mapping={str(first_seq + i): encode_message(m) for i, m in enumerate(messages)})
                    if stale:
                        pipe.hdel(key, *stale)
                    pipe.expire(key, self.ttl)
                    if end_seq > start_seq:
                        pipe.hmget(key, [str(s) for s in range(start_seq, end_seq)])
                    results = await pipe.execute()
                raw = results[-1] if end_seq > start_seq else []
            else:
                raw = await self._redis.hmget(key, [str(s) for s in range(start_seq, end_seq)])
        except Exception:
            self._breaker.fail()
            raise
        self._breaker.ok()
        if any(r is None for r in raw):
            return None
        return [decode_message(r) for r in raw]

    async def save_steps(self, key: str, data: str, ttl: int) -> None:
        """A model round's checkpoint (see inline.py), replaced whole, gone after ``ttl`` seconds."""
        self._breaker.check()
        try:
            await self._redis.set(self.prefix + "steps:" + key, data, ex=ttl)
        except Exception:
            self._breaker.fail()
            raise
        self._breaker.ok()

    async def load_steps(self, key: str) -> str | None:
        self._breaker.check()
        try:
            raw = await self._redis.get(self.prefix + "steps:" + key)
        except Exception:
            self._breaker.fail()
            raise
        self._breaker.ok()
        return raw.decode() if isinstance(raw, bytes) else raw

    async def close(self) -> None:
        await self._redis.aclose()
