"""Durable notices out: the ``durabot.deliver`` activity of the adapter's delivery task queue.

The workflow delivers each notice of a conversation in order and retries until it succeeds, so
every write here is idempotent: the answer goes into the placeholder whose id is in the delivery
meta; continuation messages and approval cards are created with deterministic nonces, and a card is
looked up by its button custom id in the thread before it is posted again after a restart.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import discord
from temporalio import activity
from temporalio.exceptions import ApplicationError

from agent_core.metrics import rate_limit_wait_seconds_total
from agent_core.types import Delivery
from agent_core.workflow import DELIVER_ACTIVITY

from .buttons import approval_view, run_link_view
from .ids import button_custom_id, nonce, parse_conversation_id
from .render import approval_decided, cancelled_note, failed_note, pending_card, reply_parts
from .streaming import Reply

if TYPE_CHECKING:
    from .app import DiscordAdapter

log = logging.getLogger(__name__)

NO_ANSWER = "_(The agent finished without an answer.)_"
CARD_SEARCH = 50  # recent thread messages searched for a card posted before a restart


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
        try:
            await handler(d)
        except discord.Forbidden as exc:
            raise ApplicationError(
                f"Discord refused {d.kind} in channel {d.meta.get('channel')!r} ({exc.text}); give the bot "
                "Send Messages in Threads and Read Message History there", type="DiscordForbidden",
                non_retryable=True,
            ) from None
        except discord.NotFound as exc:
            raise ApplicationError(f"the thread of {d.conversation_id!r} is gone ({exc.text})",
                                   type="DiscordNotFound", non_retryable=True) from None
        except discord.RateLimited as exc:  # Temporal waits this long before the retry
            rate_limit_wait_seconds_total.labels(platform="discord").inc(exc.retry_after)
            raise ApplicationError("Discord rate limit", type="DiscordRateLimited",
                                   next_retry_delay=timedelta(seconds=exc.retry_after)) from None
        except discord.HTTPException as exc:
            retryable = exc.status == 429 or exc.status >= 500
            raise ApplicationError(f"Discord answered {exc.status} to {d.kind}: {exc.text}",
                                   type="DiscordHTTPError", non_retryable=not retryable) from None

    def _reply(self, d: Delivery) -> Reply:
        reply = self.adapter.replies.get(d.turn_id)
        if reply is None:  # streamed by an earlier process, or not at all: the meta knows the placeholder
            reply = self.adapter.replies.add(Reply(
                d.conversation_id, d.turn_id, int(d.meta["channel"]), [int(d.meta["placeholder"])]))
        return reply

    async def _turn_done(self, d: Delivery) -> None:
        reply = self._reply(d)
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
