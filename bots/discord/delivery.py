"""Durable notices out: the ``durabot.deliver`` activity of the adapter's delivery task queue.

The workflow delivers each notice of a conversation in order and retries until it succeeds, so
every write here is idempotent: the answer goes into the turn's placeholder (known to this process,
or found in the thread by its Stop button; posted as a new message with a deterministic nonce when
no placeholder was ever posted); continuation messages and approval cards are created with
deterministic nonces, and a card is looked up by its button custom id in the thread before it is
posted again after a restart.

Failures are sorted as on every platform (see bots/core/delivery.py): rate limits and outages are
retried, refusals for good are not, and anything else is retried a few times and then sent as plain
text (``deliver_plain``): the same notice without components, under the same nonces.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import aiohttp
import discord
from temporalio import activity

from agent_core.types import Delivery
from agent_core.contract import DELIVER_ACTIVITY
from bots.core.delivery import Failure, deliver_with_fallback, plain
from bots.core.split import split_message

from .buttons import approval_view, run_link_view
from .ids import button_custom_id, nonce, parse_conversation_id
from .placeholder import find_placeholder
from .render import (
    MESSAGE_LIMIT,
    approval_decided,
    cancelled_note,
    failed_note,
    mention,
    pending_card,
    reply_parts,
)
from .streaming import Reply

if TYPE_CHECKING:
    from .app import DiscordAdapter

log = logging.getLogger(__name__)

NO_ANSWER = "_(The agent finished without an answer.)_"
CARD_SEARCH = 50  # recent thread messages searched for a card posted before a restart
ANSWERS = ("turn_finished", "turn_cancelled", "turn_failed")

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
    if isinstance(exc, (TimeoutError, aiohttp.ClientError, OSError)):
        return Failure.later(type(exc).__name__)
    return Failure.unexpected(type(exc).__name__)


def _retry_after(exc: discord.HTTPException) -> float | None:
    try:
        return float(exc.response.headers.get("Retry-After", ""))
    except (AttributeError, ValueError):
        return None


class DiscordDelivery:
    def __init__(self, adapter: "DiscordAdapter") -> None:
        self.adapter = adapter

    @activity.defn(name=DELIVER_ACTIVITY)
    async def deliver(self, d: Delivery) -> None:
        handler = {
            "approval_requested": self._approval_requested, "approval_decided": self._approval_decided,
            "turn_finished": self._turn_done, "turn_cancelled": self._turn_done, "turn_failed": self._turn_done,
        }.get(d.kind)
        if handler is None:
            log.warning("unknown delivery kind %r for %s; skipped", d.kind, d.conversation_id)
            return
        attempt = activity.info().attempt if activity.in_activity() else 1
        await deliver_with_fallback(d, attempt, lambda: handler(d), lambda: self.deliver_plain(d), classify,
                                    "Discord")

    async def _reply(self, d: Delivery) -> Reply:
        reply = self.adapter.replies.get(d.turn_id)
        if reply is not None:
            return reply
        channel_id = int(d.meta["channel"])
        if d.meta.get("placeholder"):  # a turn submitted when the placeholder came first, with its id
            found = Reply(d.conversation_id, d.turn_id, channel_id, [int(d.meta["placeholder"])])
        else:  # streamed by an earlier process, or not at all: look in the thread
            msg = await find_placeholder(self.adapter.client, channel_id, d.turn_id)
            found = Reply(d.conversation_id, d.turn_id, channel_id, [] if msg is None else [msg.id],
                          shown=[] if msg is None else [msg.content], controls=msg is not None)
        return self.adapter.replies.add(found)

    async def _turn_done(self, d: Delivery) -> None:
        reply = await self._reply(d)
        reply.stop_live()
        if d.kind == "turn_finished":
            parts = reply_parts(d.text or NO_ANSWER, d.tool_calls)
        elif d.kind == "turn_cancelled":
            parts = reply_parts(reply.live_text, reply.tools or d.tool_calls, note=cancelled_note(d.by), partial=True)
        else:
            parts = reply_parts("", d.tool_calls, note=failed_note(d.text))
        link = self.adapter.run_link(d)
        await self.adapter.writer.show(reply, parts, final=True, view=run_link_view(link) if link else None)

    async def _approval_requested(self, d: Delivery) -> None:
        info, ref = d.approval, parse_conversation_id(d.conversation_id)
        if info is None or ref is None:
            return
        reply = self.adapter.replies.get(d.turn_id)
        if reply is not None:
            reply.paused = True
        key = (d.conversation_id, info.id)
        if key in self.adapter.cards:
            return
        channel_id = int(d.meta["channel"])
        custom_id = button_custom_id(ref, info.id, True)
        found = await self._find_card(channel_id, custom_id)
        if found is not None:
            self.adapter.cards[key] = [found.id, found.content]
            return
        content, cut = pending_card(info.tool, info.arguments, info.requested_by)
        await self.adapter.limiter.acquire(channel_id)
        channel = self.adapter.client.get_partial_messageable(channel_id)
        msg = await channel.send(content, view=approval_view(ref, info.id, show_all=cut),
                                 nonce=nonce(d.conversation_id, info.id))
        self.adapter.cards[key] = [msg.id, content]

    async def _approval_decided(self, d: Delivery) -> None:
        info, ref = d.approval, parse_conversation_id(d.conversation_id)
        if info is None or ref is None:
            return
        reply = self.adapter.replies.get(d.turn_id)
        if reply is not None:
            reply.paused = False
        content = approval_decided(info.tool, info.arguments, info.status, info.decided_by)
        key = (d.conversation_id, info.id)
        channel_id = int(d.meta["channel"])
        card = self.adapter.cards.get(key)
        if card is None:
            found = await self._find_card(channel_id, button_custom_id(ref, info.id, True))
            if found is None:
                return  # no card with buttons left: the click already showed the decision
            card = self.adapter.cards[key] = [found.id, found.content]
        if card[1] == content:
            return
        await self.adapter.limiter.acquire(channel_id)
        channel = self.adapter.client.get_partial_messageable(channel_id)
        await channel.get_partial_message(card[0]).edit(content=content, view=None)
        card[1] = content

    # ---------------------------------------------------------------- the plain-text fallback
    async def deliver_plain(self, d: Delivery) -> None:
        """The notice as plain text without components, under the normal path's nonces.

        An answer goes through the same reply writer: parts an earlier attempt wrote are edited, missing
        ones created with the same nonces, so nothing shows twice.
        """
        info, ref = d.approval, parse_conversation_id(d.conversation_id)
        if d.kind in ANSWERS:
            reply = await self._reply(d)
            reply.stop_live()
            await self.adapter.writer.show(reply, _plain_answer(d, reply.live_text), final=True)
        elif info is None or ref is None:
            return
        elif d.kind == "approval_requested":
            key = (d.conversation_id, info.id)
            if key in self.adapter.cards:
                return
            channel_id = int(d.meta["channel"])
            found = await self._find_card(channel_id, button_custom_id(ref, info.id, True))
            if found is not None:
                self.adapter.cards[key] = [found.id, found.content]
                return
            content = _plain_card(d)
            await self.adapter.limiter.acquire(channel_id)
            channel = self.adapter.client.get_partial_messageable(channel_id)
            msg = await channel.send(content, nonce=nonce(d.conversation_id, info.id))
            self.adapter.cards[key] = [msg.id, content]
        elif d.kind == "approval_decided":
            channel_id = int(d.meta["channel"])
            card = self.adapter.cards.get((d.conversation_id, info.id))
            if card is None:
                found = await self._find_card(channel_id, button_custom_id(ref, info.id, True))
                if found is None:
                    return
                card = [found.id, found.content]
            content = _plain_card(d)
            await self.adapter.limiter.acquire(channel_id)
            channel = self.adapter.client.get_partial_messageable(channel_id)
            await channel.get_partial_message(card[0]).edit(content=content, view=None)
            self.adapter.cards[(d.conversation_id, info.id)] = [card[0], content]

    async def _find_card(self, channel_id: int, custom_id: str) -> discord.Message | None:
        me = self.adapter.client.user
        channel = self.adapter.client.get_partial_messageable(channel_id)
        async for m in channel.history(limit=CARD_SEARCH):
            if me is not None and m.author.id == me.id and custom_id in _custom_ids(m):
                return m
        return None


def _custom_ids(message: discord.Message) -> set[str]:
    out: set[str] = set()
    for row in message.components:
        for child in getattr(row, "children", [row]):
            cid = getattr(child, "custom_id", None)
            if cid:
                out.add(cid)
    return out


def _plain(text: str) -> str:
    return discord.utils.escape_mentions(plain(text))


def _plain_answer(d: Delivery, partial: str) -> list[str]:
    """An answer, failure or cancel notice as plain text parts (no table rendering, no components)."""
    if d.kind == "turn_finished":
        text = _plain(d.text or "").strip() or "(The agent finished without an answer.)"
        if d.tool_calls:
            text += "\n\nTools: " + ", ".join(_plain(t) for t in d.tool_calls)
    elif d.kind == "turn_failed":
        reason = " ".join(_plain(d.text or "unknown error").split())[:300]
        text = (f"Sorry, I could not finish this: {reason}\n"
                "Try again in a moment; if it keeps failing, an admin can check the worker logs.")
    else:
        by = f" by {mention(d.by)}" if d.by else ""
        text = "\n\n".join(p for p in (_plain(partial).strip(), f"Run cancelled{by}.") if p)
    return split_message(text, MESSAGE_LIMIT) or ["(no answer)"]


def _plain_card(d: Delivery) -> str:
    info = d.approval
    assert info is not None
    if info.status == "pending":
        return (f"Approval needed: {_plain(info.tool)}, requested by {mention(info.requested_by)}. The buttons "
                "could not be shown; it expires unless decided, and an admin can stop the run with /durabot cancel.")
    by = f" by {mention(info.decided_by)}" if info.decided_by else ""
    return f"{_plain(info.tool)}: {info.status}{by}"
