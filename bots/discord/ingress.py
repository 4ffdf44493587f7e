"""Messages in: a Discord message becomes a turn of a conversation (one conversation per thread).

``classify`` is the pure translation: who wrote what where, and whether the bot should answer.
``Ingress.on_message`` is the small handler around it: open the thread, send the message to the
workflow (the Discord message id deduplicates), then post the placeholder and follow the live events.
Submitting before the placeholder means an adapter that dies in between loses nothing: the delivery
posts the answer as a new message when it finds no placeholder. Whatever cannot be done is said in
the channel (a missing permission, the agent service down), not only logged. A message's attachments
are downloaded at once (their CDN URLs expire) into the blob store before the submit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Container
from dataclasses import dataclass
from typing import Callable

import discord

from agent_core.errors import DurabotError
from agent_core.types import ChatMessage
from bots.core.cache import BoundedCache
from bots.core.budget_gate import OverBudget, refusal_text
from bots.core.files import Received, RemoteFile, notice
from bots.core.ingress import Submitter

from .budget import budget_view
from .ids import DM, ConversationRef, nonce
from .placeholder import UNAVAILABLE, stop_view
from .ratelimit import ChannelLimiter
from .render import THINKING, strip_mentions, thread_name
from .streaming import Replies, Reply, ReplyWriter, Streamer

log = logging.getLogger(__name__)

CONTEXT_MESSAGES = 50  # earlier thread messages given to a conversation started inside a thread
CONTEXT_CHARS = 8000
THREAD_ALREADY_EXISTS = 160004  # Discord's code when a message already has a thread
KNOWN_THREADS = 10_000
NOT_OURS_SECONDS = 600.0

NO_THREAD = (
    "\N{WARNING SIGN} I cannot open a thread for this here: I am missing the **Create Public Threads** "
    "permission in this channel. Ask a server admin to give it to me (Server Settings > Roles, or this "
    "channel's permissions), then mention me again; or send me a direct message."
)
THREAD_FAILED = ("\N{WARNING SIGN} Discord did not let me open a thread for this just now; "
                 "please mention me again in a minute.")
NOT_STARTED = "\N{WARNING SIGN} I could not start on this: " + UNAVAILABLE[0].lower() + UNAVAILABLE[1:]


def hint(bot_mention: str) -> str:
    return f"Ask me something, e.g. {bot_mention} what can you do?"


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
    has_attachments: bool = False


@dataclass(frozen=True)
class Route:
    kind: str  # new_thread | thread | dm | hint (a bare mention: answer how to ask, start no turn)
    ref: ConversationRef
    text: str
    needs_context: bool = False  # a conversation that starts inside an existing thread


def is_bare(text: str) -> bool:
    """Nothing to ask in it: only whitespace, punctuation or symbols."""
    return not any(ch.isalnum() for ch in text)


def classify(m: Incoming, bot_id: int, known_threads: Container[int]) -> Route | None:
    """Whether and where the bot answers a message. None: not for us."""
    if m.author_is_bot or m.author_id == bot_id:
        return None  # our own messages, and other bots' (no bot loops)
    text = strip_mentions(m.content, bot_id)
    bare = m.mentions_bot and not m.has_attachments and is_bare(text)
    if not text and not bare and not m.has_attachments:
        return None  # nothing to answer (or the Message Content intent is off)
    route: Route | None = None
    if m.guild_id is None:
        route = Route("dm", ConversationRef(DM, str(m.channel_id), str(m.channel_id)), text)
    elif m.parent_id is not None:
        owned = m.thread_owner_id == bot_id or m.channel_id in known_threads
        if not owned and not m.mentions_bot:
            return None
        ref = ConversationRef(str(m.guild_id), str(m.parent_id), str(m.channel_id))
        route = Route("thread", ref, text, needs_context=not owned)
    elif m.mentions_bot:
        # A thread started from a message takes the message's id: the conversation id is known now.
        ref = ConversationRef(str(m.guild_id), str(m.channel_id), str(m.message_id))
        route = Route("new_thread", ref, text)
    if route is not None and bare:
        return Route("hint", route.ref, "")
    return route


def existed_before(route: Route, m: Incoming, bot_id: int, known_threads: Container[int]) -> bool | None:
    """Whether a conversation ran in the route's thread before, when that is known without asking
    Temporal (the submit is then the message's one call): a thread the bot opens for this message is
    new; one the bot opened earlier, or took part in since this process started, had one (it may have
    ended idle: its next run restores it). None: ask (a thread the bot was first mentioned in, or a
    direct message channel, after a restart)."""
    if route.kind == "new_thread":
        return False
    if int(route.ref.thread) in known_threads:
        return True
    if route.kind == "thread" and m.thread_owner_id == bot_id:
        return True
    return None


def context_from_history(history: list[tuple[int, str, str]], bot_id: int,
                         max_chars: int = CONTEXT_CHARS) -> list[ChatMessage]:
    """Earlier messages (oldest first: author id, name, text) as context, newest kept within the budget."""
    return [m for m, _ in context_with_files([(*h, []) for h in history], bot_id, max_chars)]


def context_with_files(history: list[tuple[int, str, str, list[RemoteFile]]], bot_id: int,
                       max_chars: int = CONTEXT_CHARS) -> list[tuple[ChatMessage, list[RemoteFile]]]:
    """``context_from_history`` with each message's files (author id, name, text, files), read later."""
    out: list[tuple[ChatMessage, list[RemoteFile]]] = []
    used = 0
    for author_id, name, text, files in reversed(history):
        if not text and not files:
            continue
        if used + len(text) > max_chars:
            break
        used += len(text)
        role = "assistant" if author_id == bot_id else "user"
        out.append((ChatMessage(role=role, content=text, name=None if role == "assistant" else name), files))
    return out[::-1]


def remote_files(attachments: list[discord.Attachment]) -> list[RemoteFile]:
    """A message's attachments as downloads from their CDN URLs (no credentials needed)."""
    return [RemoteFile(name=a.filename, url=a.url, size=a.size, media_type=a.content_type,
                       html_ok=a.filename.lower().endswith((".html", ".htm"))) for a in attachments]


class Ingress:
    """The handler of gateway messages. ``client`` gives the connected client (a new one after a
    reconnect)."""

    def __init__(self, submitter: Submitter, client: Callable[[], discord.Client], replies: Replies,
                 writer: ReplyWriter, limiter: ChannelLimiter) -> None:
        self.submitter = submitter
        self.client = client
        self.replies = replies
        self.writer = writer
        self.limiter = limiter
        self.known_threads: BoundedCache[int, None] = BoundedCache(KNOWN_THREADS)
        # Threads looked up and found without a conversation: their next messages are not looked up
        # again for a while (a guild's messages come to one shard, so no other process starts one unseen).
        self.not_ours: BoundedCache[int, None] = BoundedCache(KNOWN_THREADS, ttl=NOT_OURS_SECONDS)
        # The message that started a conversation in a thread someone else opened, by thread: an older
        # message of that thread handled after it (its look-up took longer) is context, not a turn.
        self.first_messages: BoundedCache[int, int] = BoundedCache(KNOWN_THREADS)
        self._lookups: dict[int, asyncio.Future[bool]] = {}

    async def on_message(self, message: discord.Message) -> None:
        client = self.client()
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
            has_attachments=bool(message.attachments),
        )
        if await self._unknown_thread_ran(incoming, client.user.id):
            self.known_threads.add(incoming.channel_id)
        first = self.first_messages.get(incoming.channel_id)
        if first is not None and incoming.message_id < first:
            return  # written before the mention that started the thread's conversation: its context
        route = classify(incoming, client.user.id, self.known_threads)
        if route is None:
            return
        if route.kind == "hint":
            await self._answer(message, hint(client.user.mention), "hint")
            return
        turn_id = str(message.id)
        if self.replies.get(turn_id) is not None:
            return  # the gateway sent this message again
        context: list[ChatMessage] = []
        existed = existed_before(route, incoming, client.user.id, self.known_threads)
        if route.kind == "new_thread":
            thread = await self._open_thread(message, route.text)
            if thread is None:
                return
            reply_channel: discord.abc.Messageable = thread
        else:
            reply_channel = client.get_partial_messageable(int(route.ref.thread))
            if route.needs_context:
                context = await self._context(channel, message)
        self.known_threads.add(int(route.ref.thread))
        self.not_ours.pop(int(route.ref.thread), None)
        if route.needs_context:  # messages handled concurrently may be older than this one
            self.first_messages[int(route.ref.thread)] = message.id
        await self._start(message, route, reply_channel, context, existed)

    async def _unknown_thread_ran(self, m: Incoming, bot_id: int) -> bool:
        """Whether a conversation ran in a thread someone else opened, when this process does not know
        (it was mentioned there before a restart): one describe, so a reply without a mention is
        answered as before the restart. Messages that need no look-up (a mention, the bot's own
        threads, known ones, nothing to read) and threads found empty lately cost none."""
        if (m.parent_id is None or m.mentions_bot or m.thread_owner_id == bot_id or m.author_is_bot
                or m.channel_id in self.known_threads or m.channel_id in self.not_ours
                or not (m.content or m.has_attachments)):
            return False
        lookup = self._lookups.get(m.channel_id)
        if lookup is None:  # messages of one thread handled at once share one look-up
            ref = ConversationRef(str(m.guild_id), str(m.parent_id), str(m.channel_id))
            lookup = self._lookups[m.channel_id] = asyncio.ensure_future(self._ran(ref, m.channel_id))
            lookup.add_done_callback(lambda _: self._lookups.pop(m.channel_id, None))
        return await asyncio.shield(lookup)

    async def _ran(self, ref: ConversationRef, thread_id: int) -> bool:
        try:
            ran = await self.submitter.agent.has_run(ref.conversation_id)
        except DurabotError as exc:
            log.warning("cannot tell whether thread %s has a conversation: %s", thread_id, exc)
            return False
        if not ran:
            self.not_ours[thread_id] = None
        return ran

    async def _answer(self, message: discord.Message, text: str, what: str) -> None:
        """Reply to the user's message where they wrote it (the nonce makes a repeat a no-op)."""
        try:
            await message.reply(text, nonce=nonce(what, message.id))
        except discord.HTTPException as exc:
            log.warning("cannot answer message %s in channel %s of guild %s (%s): Discord said %s %s",
                        message.id, message.channel.id, message.guild.id if message.guild else None, what,
                        exc.status, exc.text)

    async def _open_thread(self, message: discord.Message, text: str) -> discord.abc.Messageable | None:
        """The message's new thread; None when the bot may not open one (the user is told why)."""
        try:
            return await message.create_thread(name=thread_name(text), auto_archive_duration=1440)
        except discord.Forbidden as exc:
            log.warning("no thread for message %s in channel %s of guild %s: Discord said %s %s",
                        message.id, message.channel.id, message.guild.id if message.guild else None,
                        exc.status, exc.text)
            await self._answer(message, NO_THREAD, "no-thread")
            return None
        except discord.HTTPException as exc:
            if exc.code == THREAD_ALREADY_EXISTS:
                return self.client().get_partial_messageable(message.id)  # a retry: it is there
            log.warning("no thread for message %s in channel %s: Discord said %s %s", message.id,
                        message.channel.id, exc.status, exc.text)
            await self._answer(message, THREAD_FAILED, "no-thread")
            return None

    async def _context(self, channel: discord.abc.Messageable, message: discord.Message) -> list[ChatMessage]:
        try:
            found = [m async for m in channel.history(limit=CONTEXT_MESSAGES, before=message)]
        except discord.HTTPException as exc:
            log.warning("cannot read the thread's earlier messages (%s); starting without them", exc.status)
            return []
        history = [(m.author.id, m.author.display_name, m.content, remote_files(m.attachments))
                   for m in reversed(found)]
        pairs = context_with_files(history, self.client().user.id)  # type: ignore[union-attr]
        return await self.submitter.context_files(pairs)

    async def _start(self, message: discord.Message, route: Route, reply_channel: discord.abc.Messageable,
                     context: list[ChatMessage], existed: bool | None = None) -> None:
        conv, turn_id, user = route.ref.conversation_id, str(message.id), str(message.author.id)
        channel_id = int(route.ref.thread)
        # In memory before the submit, and locked until the placeholder is posted: a delivery of a fast
        # answer waits for the placeholder instead of racing it.
        reply = self.replies.add(Reply(conv, turn_id, channel_id, []))
        meta = {"channel": str(channel_id), "user": user}
        async with reply.lock:
            try:
                received = await self.submitter.receive(remote_files(message.attachments))
                handle = await self.submitter.submit(route.text, conv, message_id=turn_id, user=user,
                                                     user_name=message.author.display_name, context=context,
                                                     meta=meta, attachments=received.refs, existed=existed)
            except OverBudget as over:  # no turn yet; an admin may let it run, then its answer is posted anew
                await self.limiter.acquire(channel_id)
                try:
                    await reply_channel.send(refusal_text(over.start), nonce=nonce(conv, turn_id, "budget"),
                                             view=budget_view(over.hold.id) if over.hold else None)
                except discord.HTTPException as exc:
                    log.warning("cannot post in channel %s: Discord said %s %s", channel_id, exc.status, exc.text)
                return
            except DurabotError as exc:
                log.error("cannot start turn %s of %s: %s", turn_id, conv, exc)
                reply.final = True
                await self._say(reply_channel, channel_id, NOT_STARTED, nonce(conv, turn_id, "not-started"))
                return
            status = handle.last_status
            await self._file_notice(received, reply_channel, channel_id, conv, turn_id)
            if status is not None and status.done:
                reply.final = True
                return  # a repeat of a finished turn: its answer is already in place
            if not await self._placeholder(reply, reply_channel, route.ref, user):
                return
        Streamer(self.submitter.agent, self.writer, reply, self.client).start()

    async def _file_notice(self, received: Received, channel: discord.abc.Messageable, channel_id: int,
                           conv: str, turn_id: str) -> None:
        said = notice(received.problems)
        if said:  # the nonce makes a repeated message's notice a no-op
            await self._say(channel, channel_id, said, nonce(conv, turn_id, "files"))

    async def _placeholder(self, reply: Reply, channel: discord.abc.Messageable, ref: ConversationRef,
                           user: str) -> bool:
        """Post the "Thinking…" placeholder (under the reply's lock); False when there is none to stream into."""
        await self.limiter.acquire(reply.channel_id)
        try:
            msg = await channel.send(THINKING, view=stop_view(ref, reply.turn_id, user),
                                     nonce=nonce(reply.conversation_id, reply.turn_id, 0))
        except discord.HTTPException as exc:
            log.warning("no placeholder for turn %s in channel %s (Discord said %s %s); the answer will come "
                        "as a new message", reply.turn_id, reply.channel_id, exc.status, exc.text)
            return False
        reply.message_ids, reply.shown = [msg.id], [msg.content]
        if msg.content != THINKING:
            # The nonce matched the answer another process already delivered as a new message.
            reply.final = True
            return False
        reply.controls = True
        return True

    async def _say(self, channel: discord.abc.Messageable, channel_id: int, text: str, key: str) -> None:
        await self.limiter.acquire(channel_id)
        try:
            await channel.send(text, nonce=key)
        except discord.HTTPException as exc:
            log.warning("cannot post in channel %s: Discord said %s %s", channel_id, exc.status, exc.text)
