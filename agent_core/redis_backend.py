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
    """One Redis stream per conversation turn, capped at ``maxlen`` entries and expiring after ``ttl``."""

    def __init__(self, url: str, *, prefix: str = "durabot:ev:", maxlen: int = 5000, ttl: int = 3600,
                 block_ms: int = 1000) -> None:
        self.url = url
        self.prefix = prefix
        self.maxlen = maxlen
        self.ttl = ttl
        self.block_ms = block_ms
        self._redis = _client(url)
        self._breaker = _Breaker()

    async def publish(self, stream: str, event: AgentEvent) -> None:
        self._breaker.check()
        key = self.prefix + stream
        event.ts = event.ts or time.time()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(key, {"e": encode_event(event)}, maxlen=self.maxlen, approximate=True)
                pipe.expire(key, self.ttl)
                results = await pipe.execute()
        except Exception:
            self._breaker.fail()
            raise
        self._breaker.ok()
        event.offset = results[0].decode() if isinstance(results[0], bytes) else str(results[0])

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
        if not messages:
            return
        self._breaker.check()
        key = self.prefix + conversation_id
        end = first_seq + len(messages)
        stale = [str(s) for s in range(max(0, end - self.keep - len(messages)), max(0, end - self.keep))]
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, mapping={str(first_seq + i): encode_message(m) for i, m in enumerate(messages)})
                if stale:
                    pipe.hdel(key, *stale)
                pipe.expire(key, self.ttl)
                await pipe.execute()
        except Exception:
            self._breaker.fail()
            raise
        self._breaker.ok()

    async def read(self, conversation_id: str, start_seq: int, end_seq: int) -> list[ChatMessage] | None:
        if end_seq <= start_seq:
            return []
        self._breaker.check()
        try:
            raw = await self._redis.hmget(self.prefix + conversation_id, [str(s) for s in range(start_seq, end_seq)])
        except Exception:
            self._breaker.fail()
            raise
        self._breaker.ok()
        if any(r is None for r in raw):
            return None
        return [decode_message(r) for r in raw]

    async def close(self) -> None:
        await self._redis.aclose()
