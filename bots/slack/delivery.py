"""The durable side: the ``durabot.deliver`` activity that puts answers, cards and notices in Slack.

At least once in, exactly once visible: every message the bot posts carries a metadata key
(``{turn}:{part}`` for answer parts, ``{turn}:{approval}`` for cards). A first attempt trusts what this
process knows; a retried attempt (or one that does not know the placeholder, after a restart) first
reads the thread and skips what an earlier attempt already posted. Edits are idempotent by nature.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from agent_core.metrics import rate_limit_wait_seconds_total
from agent_core.types import Delivery

from .edits import EditScheduler
from .render import (
    answer_key,
    answer_parts,
    cancelled_text,
    card_blocks,
    card_key,
    failed_text,
    with_run_link,
)
from .streaming import LiveStreams
from .web import SlackCallError, SlackWeb

log = logging.getLogger(__name__)

DELIVER_ACTIVITY = "durabot.deliver"


def _no_link(_d: Delivery) -> str | None:
    return None


class SlackDelivery:
    def __init__(self, web: SlackWeb, editor_for: Callable[[str], EditScheduler], streams: LiveStreams,
                 run_link: Callable[[Delivery], str | None] = _no_link) -> None:
        """``run_link`` gives the Temporal UI address of a delivery's run (None: no link shown)."""
        self.web = web
        self.editor_for = editor_for
        self.streams = streams
        self.run_link = run_link
        self._cards: OrderedDict[tuple[str, str], str] = OrderedDict()  # (conversation, approval) -> ts

    @activity.defn(name=DELIVER_ACTIVITY)
    async def deliver(self, d: Delivery) -> None:
        attempt = activity.info().attempt if activity.in_activity() else 1
        try:
            await self.deliver_once(d, attempt)
        except SlackCallError as exc:
            if exc.retryable:
                if exc.status == 429 and exc.retry_after:  # Temporal waits this long before the retry
                    rate_limit_wait_seconds_total.labels(platform="slack").inc(exc.retry_after)
                delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
                raise ApplicationError(str(exc), type="SlackRetryLater", next_retry_delay=delay) from None
            # Slack refused for good (channel gone, bot removed...): retrying cannot help.
            raise ApplicationError(str(exc), type="SlackRejected", non_retryable=True) from None

    async def deliver_once(self, d: Delivery, attempt: int = 1) -> None:
        channel, thread = d.meta.get("channel", ""), d.meta.get("thread", "")
        team = d.meta.get("team", "")
        if not channel:
            raise ApplicationError(f"delivery {d.kind} of {d.conversation_id!r} has no channel", non_retryable=True)
        lookup = _Lookup(self.web, channel, thread, oldest=d.turn_id)
        if d.kind in ("turn_finished", "turn_failed", "turn_cancelled"):
            partial = self.streams.stop(d.conversation_id, d.turn_id)
            if d.kind == "turn_finished":
                parts = answer_parts(d.text or "", d.tool_calls)
            elif d.kind == "turn_failed":
                parts = [failed_text(d.text)]
            else:
                parts = [cancelled_text(partial, d.by)]
            await self._answer(team, channel, thread, d, parts, lookup, attempt)
        elif d.kind == "approval_requested" and d.approval is not None:
            key = card_key(d.turn_id, d.approval.id)
            ts = (await lookup.keys()).get(key) if attempt > 1 else None
            if ts is None:
                text, blocks = card_blocks(d.conversation_id, d.approval)
                ts = await self.web.post(channel, thread, text, key=key, blocks=blocks)
            self._remember_card(d.conversation_id, d.approval.id, ts)
        elif d.kind == "approval_decided" and d.approval is not None:
            key = card_key(d.turn_id, d.approval.id)
            ts = self._cards.get((d.conversation_id, d.approval.id)) or (await lookup.keys()).get(key)
            if ts is None:
                log.warning("card of approval %s in %s not found; decision not shown", d.approval.id,
                            d.conversation_id)
                return
            text, blocks = card_blocks(d.conversation_id, d.approval)
            await self.editor_for(team).send(channel, ts, text, blocks=blocks, meta_key=key)
        else:
            log.warning("ignoring delivery of unknown kind %r", d.kind)

    async def _answer(self, team: str, channel: str, thread: str, d: Delivery, parts: list[str],
                      lookup: _Lookup, attempt: int) -> None:
        placeholder = await self.streams.placeholder(d.conversation_id, d.turn_id)
        if placeholder is None:  # not posted by this process: maybe by one before a restart
            placeholder = (await lookup.keys()).get(answer_key(d.turn_id, 0))
        link = self.run_link(d)
        for i, part in enumerate(parts):
            key = answer_key(d.turn_id, i)
            blocks = with_run_link(part, link) if link and i == len(parts) - 1 else None
            if i == 0 and placeholder:
                await self.editor_for(team).send(channel, placeholder, part, blocks=blocks, meta_key=key)
                continue
            if (attempt > 1 or not placeholder) and key in await lookup.keys():
                continue  # an earlier attempt posted this part
            await self.web.post(channel, thread, part, key=key, blocks=blocks)

    def _remember_card(self, conversation_id: str, approval_id: str, ts: str) -> None:
        self._cards[(conversation_id, approval_id)] = ts
        while len(self._cards) > 5_000:
            self._cards.popitem(last=False)


class _Lookup:
    """The thread's keyed messages, read at most once per delivery attempt and only when needed.

    Only messages after ``oldest`` (the turn's own message: everything posted for the turn is later)."""

    def __init__(self, web: SlackWeb, channel: str, thread: str, oldest: str | None = None) -> None:
        self.web, self.channel, self.thread, self.oldest = web, channel, thread, oldest
        self._keys: dict[str, str] | None = None

    async def keys(self) -> dict[str, str]:
        if self._keys is None:
            self._keys = await self.web.find_keys(self.channel, self.thread, oldest=self.oldest)
        return self._keys
