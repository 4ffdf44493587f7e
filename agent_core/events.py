"""The event bus: live, best-effort events of a turn (token deltas, tool progress, retry markers).

One stream per conversation turn. Entries have offsets; a subscriber can resume from the last offset
it saw. What must arrive (the answer, approval requests) never depends on the bus: it comes from the
workflow itself. In one process the bus is in memory; across processes it is Redis Streams
(``agent_core.redis_backend``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections import OrderedDict
from typing import AsyncIterator, Protocol

from .types import AgentEvent, ApprovalInfo


def stream_key(conversation_id: str, turn_id: str) -> str:
    return f"{conversation_id}/{turn_id}"


_EVENT_FIELDS = tuple(f.name for f in dataclasses.fields(AgentEvent) if f.name != "offset")


def encode_event(event: AgentEvent) -> str:
    # Field by field, not dataclasses.asdict: that deep-copies every event, one per token batch.
    data = {}
    for name in _EVENT_FIELDS:
        value = getattr(event, name)
        if value is not None and value != {}:
            data[name] = value
    return json.dumps(data, separators=(",", ":"), default=_plain)


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"an event field holds a {type(value).__name__}, which is not JSON")


def decode_event(raw: str | bytes, offset: str | None = None) -> AgentEvent:
    data = json.loads(raw)
    approval = data.pop("approval", None)
    event = AgentEvent(**data)
    if approval:
        event.approval = ApprovalInfo(**approval)
    event.offset = offset
    return event


class EventBus(Protocol):
    async def publish(self, stream: str, event: AgentEvent) -> None: ...

    def subscribe(
        self, stream: str, after: str | None = None, *, idle_timeout: float | None = None
    ) -> AsyncIterator[AgentEvent]:
        """Events after offset ``after`` (from the start when None), as they come.

        Ends when ``idle_timeout`` seconds pass with nothing new; otherwise the caller stops.
        """

    async def close(self) -> None: ...


class InMemoryEventBus:
    """Streams in this process. Old streams are dropped past ``max_streams`` or ``ttl`` seconds."""

    def __init__(self, max_streams: int = 10_000, max_entries: int = 20_000, ttl: float = 3600.0) -> None:
        self._streams: OrderedDict[str, tuple[float, list[AgentEvent]]] = OrderedDict()
        self._cond = asyncio.Condition()
        self._max_streams = max_streams
        self._max_entries = max_entries
        self._ttl = ttl

    async def publish(self, stream: str, event: AgentEvent) -> None:
        event.ts = event.ts or time.time()
        now = time.monotonic()
        entry = self._streams.get(stream)
        if entry is None:
            entry = (now, [])
            self._streams[stream] = entry
            self._expire(now)
        events = entry[1]
        if len(events) < self._max_entries:
            event.offset = str(len(events) + 1)
            events.append(event)
        async with self._cond:
            self._cond.notify_all()

    def _expire(self, now: float) -> None:
        while self._streams:
            key, (created, _) = next(iter(self._streams.items()))
            if len(self._streams) <= self._max_streams and now - created < self._ttl:
                break
            del self._streams[key]

    async def subscribe(
        self, stream: str, after: str | None = None, *, idle_timeout: float | None = None
    ) -> AsyncIterator[AgentEvent]:
        position = int(after or 0)
        while True:
            batch = self._after(stream, position)
            if not batch:
                async with self._cond:
                    batch = self._after(stream, position)  # re-check under the lock: no lost wake-up
                    if not batch:
                        try:
                            await asyncio.wait_for(self._cond.wait(), idle_timeout)
                        except asyncio.TimeoutError:
                            return
                        continue
            for event in batch:
                position += 1
                yield event

    def _after(self, stream: str, position: int) -> list[AgentEvent]:
        entry = self._streams.get(stream)
        return entry[1][position:] if entry else []

    async def close(self) -> None:
        self._streams.clear()


class TextAccumulator:
    """Builds the text to show from live events, honouring retry markers.

    The visible text is the latest round's text so far; a ``retry`` event discards what that round's
    earlier attempt had streamed, so a subscriber never shows duplicated text.
    """

    def __init__(self) -> None:
        self.round = -1
        self.attempt = 0
        self.parts: list[str] = []
        self.tools: list[str] = []
        self.final = False

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def feed(self, event: AgentEvent) -> bool:
        """Apply one event; True if the visible text changed."""
        if event.source:
            return False  # a sub-agent's own text is not the answer
        rnd = event.round if event.round is not None else self.round
        if event.kind == "retry":
            if rnd >= self.round:
                self.round, self.attempt, self.parts = rnd, event.attempt or self.attempt + 1, []
                return True
            return False
        if event.kind == "token" and event.delta:
            attempt = event.attempt or 1
            if rnd < self.round or (rnd == self.round and attempt < self.attempt):
                return False  # a stale attempt's late token
            if rnd > self.round or attempt > self.attempt:
                self.round, self.attempt, self.parts = rnd, attempt, []
            self.parts.append(event.delta)
            return True
        if event.kind == "round_finished":
            if event.data.get("final"):
                self.final = True
                changed = self.text != (event.text or "")
                self.parts = [event.text or ""]
                return changed
            return False
        if event.kind == "tool_started" and event.tool:
            self.tools.append(event.tool)
        return False


async def measured(events: AsyncIterator[AgentEvent]) -> AsyncIterator[AgentEvent]:
    """``events`` as they come, observing how long each took from publication (the bus lag metric)."""
    from .metrics import event_bus_lag_seconds

    async for ev in events:
        if ev.ts:
            event_bus_lag_seconds.observe(max(0.0, time.time() - ev.ts))
        yield ev
