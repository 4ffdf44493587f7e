"""Durable notices out: Discord's deliverer, what the ``durabot.deliver`` activity puts in Discord.

The workflow delivers each notice of a conversation in order and retries until it succeeds, so
every write here is idempotent: the answer goes into the turn's placeholder (known to this process,
or found in the thread by its Stop button; posted as a new message with a deterministic nonce when
no placeholder was ever posted); continuation messages and approval cards are created with
deterministic nonces, and a card is looked up by its button custom id in the thread before it is
posted again after a restart.

Failures are sorted as on every platform (see bots/core/delivery.py): rate limits and outages are
retried, refusals for good are not, and anything else is retried a few times and then sent as plain
text (the ``plain_*`` methods): the same notice without components, under the same nonces.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import discord

from agent_core.blobs import BlobStore
from agent_core.contract import DeliveryKind
from agent_core.types import BlobRef, Delivery
from bots.core.cache import BoundedCache
from bots.core.delivery import Failure, transport_failure
from bots.core.fallback_text import PlainWords, plain_answer, plain_card
from bots.core.uploads import UploadLimits, deliver_files

from .buttons import approval_view, run_link_view
from .ids import ConversationRef, button_custom_id, nonce, parse_conversation_id
from .placeholder import find_placeholder
from .ratelimit import UPLOAD_BYTES, UPLOAD_FILES, ChannelLimiter
from .render import (
    MESSAGE_LIMIT,
    approval_decided,
    cancelled_note,
    failed_note,
    mention,
    pending_card,
    reply_parts,
)
from .streaming import Replies, Reply, ReplyWriter

log = logging.getLogger(__name__)

NO_ANSWER = "_(The agent finished without an answer.)_"
CARD_SEARCH = 50  # recent thread messages searched for a card posted before a restart

# Refusals that no retry can change: the bot's token, or the thread is gone or closed to the bot.
REFUSED = frozenset({401, 403, 404})
_ACCESS_HINT = "; give the bot Send Messages in Threads and Read Message History there"


def classify(exc: Exception) -> Failure:
    if isinstance(exc, discord.RateLimited):
        return Failure.later("rate limited", exc.retry_after)
    if isinstance(exc, discord.HTTPException):
        said = (exc.text or "").partition("\n")[0][:200]  # Discord's message, without the per-field details
        reason = f"HTTP {exc.status} {said} (code {exc.code})"
        if exc.status == 429:
            return Failure.later(reason, _retry_after(exc))
        if exc.status >= 500:
            return Failure.later(reason)
        if exc.status in REFUSED:
            return Failure.refused(reason + (_ACCESS_HINT if exc.status == 403 else ""))
        return Failure.unexpected(reason)
    return transport_failure(exc)


def _retry_after(exc: discord.HTTPException) -> float | None:
    try:
        return float(exc.response.headers.get("Retry-After", ""))
    except (AttributeError, ValueError):
        return None


def _no_link(_d: Delivery) -> str | None:
    return None


@dataclass
class DiscordDeliverer:
    """Discord's half of ``durabot.deliver`` (see bots/core/delivery.py for the activity itself)."""

    platform: ClassVar[str] = "Discord"

    client: Callable[[], discord.Client]  # the connected client (a new one after a reconnect)
    limiter: ChannelLimiter
    replies: Replies
    writer: ReplyWriter
    cards: BoundedCache[tuple[str, str], list]  # (conversation, approval id) -> [message id, content]
    run_link: Callable[[Delivery], str | None] = _no_link
    blobs: BlobStore | None = None  # where the files a turn's tools made are read from

    def classify(self, exc: Exception) -> Failure:
        return classify(exc)

    async def _reply(self, d: Delivery) -> Reply:
        reply = self.replies.get(d.turn_id)
        if reply is not None:
            return reply
        channel_id = int(d.meta["channel"])
        if d.meta.get("placeholder"):  # a turn submitted when the placeholder came first, with its id
            found = Reply(d.conversation_id, d.turn_id, channel_id, [int(d.meta["placeholder"])])
        else:  # streamed by an earlier process, or not at all: look in the thread
            msg = await find_placeholder(self.client(), channel_id, d.turn_id)
            found = Reply(d.conversation_id, d.turn_id, channel_id, [] if msg is None else [msg.id],
                          shown=[] if msg is None else [msg.content], controls=msg is not None)
        return self.replies.add(found)

    async def answer(self, d: Delivery, attempt: int = 1) -> None:
        reply = await self._reply(d)
        reply.stop_live()
        if d.kind == DeliveryKind.TURN_FINISHED:
            parts = reply_parts(d.text or NO_ANSWER, d.tool_calls)
        elif d.kind == DeliveryKind.TURN_CANCELLED:
            parts = reply_parts(reply.live_text, reply.tools or d.tool_calls, note=cancelled_note(d.by), partial=True)
        else:
            parts = reply_parts("", d.tool_calls, note=failed_note(d.text))
        link = self.run_link(d)
        await self.writer.show(reply, parts, final=True, view=run_link_view(link) if link else None)
        await self._files(d, reply)

    async def _files(self, d: Delivery, reply: Reply) -> None:
        """The turn's files, after its text (see bots/core/uploads.py)."""
        if d.files and d.kind == DeliveryKind.TURN_FINISHED and self.blobs is not None:
            await deliver_files(d, self.blobs, _DiscordUploader(self, d, reply),
                                UploadLimits(UPLOAD_BYTES, UPLOAD_FILES), self.platform)

    def _pause(self, d: Delivery, paused: bool) -> None:
        """An open approval pauses the turn's live edits; its decision resumes them."""
        reply = self.replies.get(d.turn_id)
        if reply is not None:
            reply.paused = paused

    async def card(self, d: Delivery, attempt: int = 1) -> None:
        info, ref = d.approval, parse_conversation_id(d.conversation_id)
        if info is None or ref is None:
            return
        self._pause(d, True)
        if await self._known_card(d, ref) is not None:
            return
        content, cut = pending_card(info.tool, info.arguments, info.requested_by)
        await self._post_card(d, content, approval_view(ref, info.id, show_all=cut, thread_scope=info.thread_scope))

    async def decided_card(self, d: Delivery, attempt: int = 1) -> None:
        info, ref = d.approval, parse_conversation_id(d.conversation_id)
        if info is None or ref is None:
            return
        self._pause(d, False)
        card = await self._known_card(d, ref)
        if card is None:
            return  # no card with buttons left: the click already showed the decision
        await self._edit_card(d, card, approval_decided(info.tool, info.arguments, info.status, info.decided_by,
                                                        info.scope))

    async def _known_card(self, d: Delivery, ref: ConversationRef) -> list | None:
        """[message id, content] of the approval's card: known to this process, or found in its thread
        by the card's Approve button (remembered then)."""
        assert d.approval is not None
        key = (d.conversation_id, d.approval.id)
        card = self.cards.get(key)
        if card is None:
            found = await self._find_card(int(d.meta["channel"]), button_custom_id(ref, d.approval.id, True))
            if found is not None:
                card = self.cards[key] = [found.id, found.content]
        return card

    async def _post_card(self, d: Delivery, content: str, view: discord.ui.View | None = None) -> None:
        assert d.approval is not None
        channel_id = int(d.meta["channel"])
        await self.limiter.acquire(channel_id)
        channel = self.client().get_partial_messageable(channel_id)
        kwargs = {} if view is None else {"view": view}
        msg = await channel.send(content, nonce=nonce(d.conversation_id, d.approval.id), **kwargs)
        self.cards[(d.conversation_id, d.approval.id)] = [msg.id, content]

    async def _edit_card(self, d: Delivery, card: list, content: str) -> None:
        if card[1] == content:
            return
        channel_id = int(d.meta["channel"])
        await self.limiter.acquire(channel_id)
        channel = self.client().get_partial_messageable(channel_id)
        await channel.get_partial_message(card[0]).edit(content=content, view=None)
        card[1] = content

    # ---------------------------------------------------------------- the plain-text fallback
    # The notice as plain text without components, under the normal path's nonces. An answer goes
    # through the same reply writer: parts an earlier attempt wrote are edited, missing ones created
    # with the same nonces, so nothing shows twice.
    async def plain_answer(self, d: Delivery) -> None:
        reply = await self._reply(d)
        reply.stop_live()
        await self.writer.show(reply, _plain_answer(d, reply.live_text), final=True)
        await self._files(d, reply)

    async def plain_card(self, d: Delivery) -> None:
        ref = parse_conversation_id(d.conversation_id)
        if ref is not None and await self._known_card(d, ref) is None:
            await self._post_card(d, _plain_card(d))

    async def plain_decided_card(self, d: Delivery) -> None:
        ref = parse_conversation_id(d.conversation_id)
        card = None if ref is None else await self._known_card(d, ref)
        if card is not None:
            await self._edit_card(d, card, _plain_card(d))

    async def _find_card(self, channel_id: int, custom_id: str) -> discord.Message | None:
        client = self.client()
        me = client.user
        channel = client.get_partial_messageable(channel_id)
        async for m in channel.history(limit=CARD_SEARCH):
            if me is not None and m.author.id == me.id and custom_id in _custom_ids(m):
                return m
        return None


class _DiscordUploader:
    """Discord's file I/O for one delivery (see ``bots.core.uploads.Uploader``): one message per file,
    created with a deterministic nonce, and looked for among the bot's messages after the answer."""

    def __init__(self, owner: DiscordDeliverer, d: Delivery, reply: Reply) -> None:
        self.owner, self.d, self.reply = owner, d, reply
        self.channel_id = int(d.meta["channel"])
        self.channel = owner.client().get_partial_messageable(self.channel_id)

    async def _mine(self) -> list[discord.Message]:
        me = self.owner.client().user
        after = discord.Object(self.reply.message_ids[0]) if self.reply.message_ids else None
        return [m async for m in self.channel.history(limit=CARD_SEARCH, after=after)
                if me is not None and m.author.id == me.id]

    async def uploaded(self) -> set[tuple[str, int]]:
        return {(a.filename, a.size) for m in await self._mine() for a in m.attachments}

    def shown_name(self, ref: BlobRef) -> str:
        # Discord keeps letters, digits, dots, dashes and underscores of a file name.
        return re.sub(r"[^A-Za-z0-9._-]", "_", ref.name) or "file"

    async def upload(self, ref: BlobRef, data: bytes) -> None:
        await self.owner.limiter.acquire(self.channel_id)
        await self.channel.send(file=discord.File(io.BytesIO(data), filename=self.shown_name(ref)),
                                nonce=nonce(self.d.conversation_id, self.d.turn_id, "file", ref.sha256, ref.name))

    async def note(self, text: str) -> None:
        if any(m.content == text for m in await self._mine()):
            return
        await self.owner.limiter.acquire(self.channel_id)
        await self.channel.send(text, nonce=nonce(self.d.conversation_id, self.d.turn_id, "files-note"))


def _custom_ids(message: discord.Message) -> set[str]:
    out: set[str] = set()
    for row in message.components:
        for child in getattr(row, "children", [row]):
            cid = getattr(child, "custom_id", None)
            if cid:
                out.add(cid)
    return out


WORDS = PlainWords(
    escape=discord.utils.escape_mentions, who=mention, no_answer="(The agent finished without an answer.)",
    failed_hint="Try again in a moment; if it keeps failing, an admin can check the worker logs.",
    requested_by=", requested by ",
)


def _plain_answer(d: Delivery, partial: str) -> list[str]:
    return plain_answer(d, partial, WORDS, MESSAGE_LIMIT)


def _plain_card(d: Delivery) -> str:
    return plain_card(d, WORDS)
