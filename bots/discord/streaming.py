"""A turn's reply: the messages that show it, live edits while it streams, the final write.

One ``Reply`` per turn. Its first message is the placeholder posted once the user's message was
submitted; the delivery finds it again after a restart by its Stop button (see ``placeholder``), so
the final answer lands in that same message, and removes the button. Messages past the first
(answers over 2,000 characters) are created with a deterministic nonce, so a retried create returns
the existing message instead of posting it twice. All writes to one reply go through its lock, and
once the final text is written, late live edits are dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import discord

from agent_core.types import TurnStatus
from bots.core.cache import BoundedCache
from bots.core.follow import Follower

from .ids import nonce
from .ratelimit import ChannelLimiter
from .render import reply_parts

if TYPE_CHECKING:
    from agent_core import Agent

log = logging.getLogger(__name__)

EDIT_INTERVAL = 1.0  # at most one live edit per second per reply
TYPING_EVERY = 8.0  # Discord shows "typing" for 10 s after each trigger


@dataclass
class Reply:
    conversation_id: str
    turn_id: str
    channel_id: int
    message_ids: list[int]
    shown: list[str] = field(default_factory=list)  # content last written, per message
    live_text: str = ""
    tools: list[str] = field(default_factory=list)
    final: bool = False
    controls: bool = False  # the first message carries the Stop button, removed with the final text
    paused: bool = False  # waiting for an approval: no typing indicator
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    tasks: list[asyncio.Task] = field(default_factory=list)

    def stop_live(self) -> None:
        for t in self.tasks:
            t.cancel()
        self.tasks.clear()


class Replies:
    """Replies of this process, by turn; bounded, because a restart forgets them anyway (the delivery
    finds the placeholder in the thread). A reply pushed out stops its live edits first: they could
    otherwise overwrite the final text that a later delivery writes through a new Reply."""

    def __init__(self, limit: int = 2000) -> None:
        self._items: BoundedCache[str, Reply] = BoundedCache(limit)

    def get(self, turn_id: str) -> Reply | None:
        return self._items.get(turn_id)

    def add(self, reply: Reply) -> Reply:
        if reply.turn_id not in self._items:
            while len(self._items) >= self._items.maxsize:
                oldest = next(iter(self._items))
                old = self._items.pop(oldest)
                if old is not None:
                    old.stop_live()
        self._items[reply.turn_id] = reply
        return reply

    def all(self) -> list[Reply]:
        return [r for r in (self._items.get(k) for k in self._items) if r is not None]


class ReplyWriter:
    """Writes a reply's parts: edits messages whose text changed, creates missing ones."""

    def __init__(self, client: Callable[[], discord.Client], limiter: ChannelLimiter) -> None:
        self._client = client
        self.limiter = limiter

    async def show(self, reply: Reply, parts: list[str], *, final: bool,
                   view: discord.ui.View | None = None) -> None:
        """Write ``parts``; ``view`` (buttons) goes on the last message, which is then always written."""
        async with reply.lock:
            if reply.final:
                return  # the final text is written; a live edit must not overwrite it
            channel = self._client().get_partial_messageable(reply.channel_id)
            for i, part in enumerate(parts):
                extra: dict = {"view": view} if view is not None and i == len(parts) - 1 else {}
                if final and i == 0 and reply.controls and not extra:
                    extra = {"view": None}  # the answer is in: the Stop button goes
                if i < len(reply.message_ids):
                    if i < len(reply.shown) and reply.shown[i] == part and not extra:
                        continue
                    await self.limiter.acquire(reply.channel_id)
                    try:
                        await channel.get_partial_message(reply.message_ids[i]).edit(content=part, **extra)
                    except discord.NotFound:  # someone deleted it: post the text again instead of losing it
                        await self.limiter.acquire(reply.channel_id)
                        again = nonce(reply.conversation_id, reply.turn_id, i, reply.message_ids[i])
                        reply.message_ids[i] = (await channel.send(part, nonce=again, **extra)).id
                    _set(reply.shown, i, part)
                else:
                    await self.limiter.acquire(reply.channel_id)
                    msg = await channel.send(part, nonce=nonce(reply.conversation_id, reply.turn_id, i), **extra)
                    reply.message_ids.append(msg.id)
                    _set(reply.shown, i, part)
            if final:
                # The text can shrink (a retried model round): messages past the end go away.
                for mid in reply.message_ids[len(parts):]:
                    await self.limiter.acquire(reply.channel_id)
                    try:
                        await channel.get_partial_message(mid).delete()
                    except discord.NotFound:
                        pass
                del reply.message_ids[len(parts):], reply.shown[len(parts):]
                reply.final, reply.controls = True, False


def _set(items: list[str], i: int, value: str) -> None:
    items.extend([""] * (i + 1 - len(items)))
    items[i] = value


class Streamer:
    """The Discord sink of a turn followed by ``bots.core.follow``: edits its reply at most once a
    second (best effort), and shows "typing" while the answer is being written."""

    def __init__(self, agent: "Agent", writer: ReplyWriter, reply: Reply, client: Callable[[], discord.Client],
                 *, interval: float = EDIT_INTERVAL, idle_timeout: float = 1800.0) -> None:
        self.writer = writer
        self.reply = reply
        self._client = client
        self.idle_timeout = idle_timeout
        self._follower = Follower(agent, reply.conversation_id, reply.turn_id, self, interval=interval,
                                  idle=idle_timeout)
        self._ended = False

    def start(self) -> None:
        self.reply.tasks += [asyncio.create_task(self._follower.run()), asyncio.create_task(self._typing())]

    def update(self, text: str, tools: list[str]) -> None:
        self.reply.live_text, self.reply.tools = text, tools

    def render(self, text: str, tools: list[str], step: str | None) -> list[str]:
        return reply_parts(text, tools, partial=True)

    async def show(self, rendered: list[str]) -> None:
        try:
            await self.writer.show(self.reply, rendered, final=False)
        except discord.HTTPException as exc:
            log.info("live edit of turn %s failed (%s); the final answer will still come",
                     self.reply.turn_id, exc.status)

    async def finish(self, ended: TurnStatus | None) -> None:
        self._ended = True

    async def _typing(self) -> None:
        channel = self._client().get_partial_messageable(self.reply.channel_id)
        deadline = time.monotonic() + self.idle_timeout
        while not self.reply.final and not self._ended and time.monotonic() < deadline:
            if not self.reply.paused:
                try:
                    await channel.typing()
                except discord.HTTPException as exc:
                    log.debug("typing indicator failed: %s", exc)
            await asyncio.sleep(TYPING_EVERY)
