"""Messages in: a Discord message becomes a turn of a conversation (one conversation per thread).

``classify`` is the pure translation: who wrote what where, and whether the bot should answer.
``Ingress.on_message`` is the small handler around it: open the thread, post the placeholder, send
the message to the workflow (the Discord message id deduplicates), and follow the live events.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from agent_core.errors import DurabotError
from agent_core.types import ChatMessage, DeliveryTarget

from .ids import DM, ConversationRef, nonce
from .render import THINKING, strip_mentions, thread_name
from .streaming import Reply, Streamer

if TYPE_CHECKING:
    from .app import DiscordAdapter

log = logging.getLogger(__name__)

CONTEXT_MESSAGES = 50  # earlier thread messages given to a conversation started inside a thread
CONTEXT_CHARS = 8000
THREAD_ALREADY_EXISTS = 160004  # Discord's code when a message already has a thread


@dataclass(frozen=True)
class Incoming:
    """A Discord message, reduced to what routing needs."""

    message_id: int
    author_id: int
    author_is_bot: bool
    content: str
    guild_id: int | None
    channel_id: int
    parent_id: int | None = None  # set when the message is in a thread
    thread_owner_id: int | None = None
    mentions_bot: bool = False


@dataclass(frozen=True)
class Route:
    kind: str  # new_thread | thread | dm
    ref: ConversationRef
    text: str
    needs_context: bool = False  # a conversation that starts inside an existing thread


def classify(m: Incoming, bot_id: int, known_threads: "set[int] | OrderedDict[int, None]") -> Route | None:
    """Whether and where the bot answers a message. None: not for us."""
    if m.author_is_bot or m.author_id == bot_id:
        return None  # our own messages, and other bots' (no bot loops)
    text = strip_mentions(m.content, bot_id)
    if not text:
        return None  # nothing to answer (or the Message Content intent is off)
    if m.guild_id is None:
        return Route("dm", ConversationRef(DM, str(m.channel_id), str(m.channel_id)), text)
    if m.parent_id is not None:
        owned = m.thread_owner_id == bot_id or m.channel_id in known_threads
        if not owned and not m.mentions_bot:
            return None
        ref = ConversationRef(str(m.guild_id), str(m.parent_id), str(m.channel_id))
        return Route("thread", ref, text, needs_context=not owned)
    if m.mentions_bot:
        # A thread started from a message takes the message's id: the conversation id is known now.
        ref = ConversationRef(str(m.guild_id), str(m.channel_id), str(m.message_id))
        return Route("new_thread", ref, text)
    return None


def context_from_history(history: list[tuple[int, str, str]], bot_id: int,
                         max_chars: int = CONTEXT_CHARS) -> list[ChatMessage]:
    """Earlier messages (oldest first: author id, name, text) as context, newest kept within the budget."""
    out: list[ChatMessage] = []
    used = 0
    for author_id, name, text in reversed(history):
        if not text:
            continue
        if used + len(text) > max_chars:
            break
        used += len(text)
        role = "assistant" if author_id == bot_id else "user"
        out.append(ChatMessage(role=role, content=text, name=None if role == "assistant" else name))
    return out[::-1]


class Ingress:
    def __init__(self, adapter: "DiscordAdapter") -> None:
        self.adapter = adapter
        self.known_threads: OrderedDict[int, None] = OrderedDict()

    def _remember(self, thread_id: int) -> None:
        self.known_threads[thread_id] = None
        while len(self.known_threads) > 10_000:
            self.known_threads.popitem(last=False)

    async def on_message(self, message: discord.Message) -> None:
        client = self.adapter.client
        if client.user is None or message.author.bot:
            return
        channel = message.channel
        guild_id = message.guild.id if message.guild else getattr(channel, "guild_id", None)
        if guild_id is not None and isinstance(channel, discord.PartialMessageable):
            channel = await client.fetch_channel(channel.id)  # not cached: is it a thread, and whose?
        incoming = Incoming(
            message_id=message.id, author_id=message.author.id, author_is_bot=message.author.bot,
            content=message.content or "", guild_id=guild_id, channel_id=channel.id,
            parent_id=channel.parent_id if isinstance(channel, discord.Thread) else None,
            thread_owner_id=channel.owner_id if isinstance(channel, discord.Thread) else None,
            mentions_bot=any(u.id == client.user.id for u in message.mentions),
        )
        route = classify(incoming, client.user.id, self.known_threads)
        if route is None:
            return
        turn_id = str(message.id)
        if self.adapter.replies.get(turn_id) is not None:
            return  # the gateway sent this message again
        context: list[ChatMessage] = []
        if route.kind == "new_thread":
            reply_channel = await self._open_thread(message, route.text)
        else:
            reply_channel = client.get_partial_messageable(int(route.ref.thread))
            if route.needs_context:
                context = await self._context(channel, message)
        self._remember(int(route.ref.thread))
        await self._start(message, route, reply_channel, context)

    async def _open_thread(self, message: discord.Message, text: str) -> discord.abc.Messageable:
        try:
            return await message.create_thread(name=thread_name(text), auto_archive_duration=1440)
        except discord.HTTPException as exc:
            if exc.code != THREAD_ALREADY_EXISTS:
                raise
            return self.adapter.client.get_partial_messageable(message.id)  # a retry: it is there

    async def _context(self, channel: discord.abc.Messageable, message: discord.Message) -> list[ChatMessage]:
        try:
            found = [m async for m in channel.history(limit=CONTEXT_MESSAGES, before=message)]
        except discord.HTTPException as exc:
            log.warning("cannot read the thread's earlier messages (%s); starting without them", exc.status)
            return []
        history = [(m.author.id, m.author.display_name, m.content) for m in reversed(found)]
        return context_from_history(history, self.adapter.client.user.id)  # type: ignore[union-attr]

    async def _start(self, message: discord.Message, route: Route, reply_channel: discord.abc.Messageable,
                     context: list[ChatMessage]) -> None:
        adapter = self.adapter
        conv, turn_id = route.ref.conversation_id, str(message.id)
        channel_id = int(route.ref.thread)
        await adapter.limiter.acquire(channel_id)
        placeholder = await reply_channel.send(THINKING, nonce=nonce(conv, turn_id, 0))
        reply = adapter.replies.add(Reply(conv, turn_id, channel_id, [placeholder.id], shown=[THINKING]))
        target = DeliveryTarget(task_queue=adapter.delivery_queue,
                                meta={"channel": str(channel_id), "placeholder": str(placeholder.id)})
        try:
            handle = await adapter.agent.run_async(
                route.text, conv, message_id=turn_id, user=str(message.author.id),
                user_name=message.author.display_name, context=context, deliver_to=target,
                approvers=adapter.settings.approvers, admins=adapter.settings.admins,
            )
        except DurabotError as exc:
            log.error("cannot start turn %s of %s: %s", turn_id, conv, exc)
            await adapter.writer.show(reply, [
                "\N{WARNING SIGN} I could not start on this: the agent service is unavailable right now. "
                "Please try again in a minute."], final=True)
            return
        status = handle.last_status
        if status is not None and status.done:
            return  # a repeat of a finished turn: its answer is already in place
        Streamer(adapter.agent, adapter.writer, reply, lambda: adapter.client).start()
