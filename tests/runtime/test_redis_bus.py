"""The Redis event bus's group commit and the transcript store's one-round-trip write and read,
against the real Redis server the suite starts."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from agent_core.redis_backend import RedisEventBus, RedisTranscriptStore
from agent_core.store import write_then_read
from agent_core.types import AgentEvent, ChatMessage
from workers.servers import free_port


@pytest.fixture
async def bus(redis_server):
    bus = RedisEventBus(redis_server.url, block_ms=100)
    yield bus
    await bus.close()


def _stream() -> str:
    return f"conv-{uuid.uuid4().hex[:8]}/turn"


def _token(i: int, writer: int = 0) -> AgentEvent:
    return AgentEvent(kind="token", turn_id="t", delta=f"{writer}:{i} ", round=0, attempt=1)


async def _read_all(bus: RedisEventBus, stream: str) -> list[AgentEvent]:
    return [e async for e in bus.subscribe(stream, idle_timeout=0.3)]


async def test_an_idle_bus_sends_an_event_at_once_in_its_own_round_trip(bus):
    stream = _stream()
    event = _token(0)
    await bus.publish(stream, event)
    assert bus.round_trips == 1 and event.offset
    assert [(e.delta, e.offset) for e in await _read_all(bus, stream)] == [("0:0 ", event.offset)]


async def test_concurrent_turns_share_round_trips_and_keep_each_streams_order(bus):
    streams = [_stream() for _ in range(20)]

    async def turn(n: int) -> list[AgentEvent]:
        events = [_token(i, n) for i in range(30)]
        for e in events:  # one writer per turn, as the token batcher is
            await bus.publish(streams[n], e)
        return events

    sent = await asyncio.gather(*(turn(n) for n in range(20)))
    assert bus.round_trips < 20 * 30 / 4  # most pipelines carried the events of several turns
    for n, got in enumerate(await asyncio.gather(*(_read_all(bus, s) for s in streams))):
        assert [e.delta for e in got] == [e.delta for e in sent[n]]
        assert [e.offset for e in got] == [e.offset for e in sent[n]]


async def test_events_keep_the_order_publish_was_called_in(bus):
    stream = _stream()
    events = [_token(i) for i in range(200)]
    await asyncio.gather(*(bus.publish(stream, e) for e in events))
    assert [e.delta for e in await _read_all(bus, stream)] == [e.delta for e in events]


async def test_a_cancelled_publisher_loses_nothing_of_anyone_else(bus):
    victim, other = _stream(), _stream()
    published: list[AgentEvent] = []
    started = asyncio.Event()

    async def victim_writer() -> None:
        for i in range(10_000):
            e = _token(i)
            await bus.publish(victim, e)
            published.append(e)
            if i == 20:
                started.set()

    async def other_writer() -> list[AgentEvent]:
        events = [_token(i, 1) for i in range(300)]
        for e in events:
            await bus.publish(other, e)
        return events

    task = asyncio.create_task(victim_writer())
    others = asyncio.create_task(other_writer())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    sent = await asyncio.wait_for(others, 30)
    assert [e.delta for e in await _read_all(bus, other)] == [e.delta for e in sent]
    got = [e.delta for e in await _read_all(bus, victim)]
    # everything the cancelled writer saw published is there, in order, nothing twice; the one event
    # in flight when it was cancelled may or may not have gone out
    assert got[:len(published)] == [e.delta for e in published]
    assert len(got) - len(published) in (0, 1) and len(set(got)) == len(got)
    after = _token(99_999)
    await bus.publish(victim, after)  # the writer is not broken by the cancel
    assert (await _read_all(bus, victim))[-1].delta == after.delta


async def test_with_redis_away_every_waiting_publisher_fails_fast():
    bus = RedisEventBus(f"redis://127.0.0.1:{free_port()}/0")
    try:
        results = await asyncio.wait_for(asyncio.gather(
            *(bus.publish(_stream(), _token(i)) for i in range(50)), return_exceptions=True), 5)
        assert len(results) == 50 and all(isinstance(r, RedisConnectionError) for r in results)
        with pytest.raises(ConnectionError, match="recent failure"):  # the breaker is open
            await bus.publish(_stream(), _token(0))
    finally:
        await bus.close()


async def test_the_transcript_is_written_and_read_in_one_call(redis_server):
    store = RedisTranscriptStore(redis_server.url, keep=5)
    conv = f"conv-{uuid.uuid4().hex[:8]}"
    try:
        first = [ChatMessage(role="user", content=f"m{i}") for i in range(3)]
        assert await write_then_read(store, conv, 0, first, 0, 3) == first
        more = [ChatMessage(role="assistant", content=f"m{i}") for i in range(3, 7)]
        assert await write_then_read(store, conv, 3, more, 2, 7) == first[2:] + more
        assert await write_then_read(store, conv, 7, [], 2, 7) == first[2:] + more
        assert await store.read(conv, 0, 7) is None  # the oldest two were trimmed (keep=5)
        assert await write_then_read(store, conv, 7, [ChatMessage(role="user", content="x")], 7, 7) == []
        assert [m.content for m in await store.read(conv, 6, 8)] == ["m6", "x"]
    finally:
        await store.close()
