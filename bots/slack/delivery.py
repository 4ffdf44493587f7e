"""The durable side: the ``durabot.deliver`` activity that puts answers, cards and notices in Slack.

At least once in, exactly once visible: every message the bot posts carries a metadata key
(``{turn}:{part}`` for answer parts, ``{turn}:{approval}`` for cards). A first attempt trusts what this
process knows; a retried attempt (or one that does not know the placeholder, after a restart) first
reads the thread and skips what an earlier attempt already posted. Edits are idempotent by nature.

Failures are sorted as on every platform (see bots/core/delivery.py): rate limits and outages are
retried, refusals for good are not, and anything else is retried a few times and then sent as plain
text (``deliver_plain``): the same notice, escaped, without blocks, under the same keys.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import aiohttp
from temporalio import activity
from temporalio.exceptions import ApplicationError

from agent_core.contract import DELIVER_ACTIVITY
from agent_core.types import Delivery
from bots.core.cache import BoundedCache
from bots.core.delivery import Failure, deliver_with_fallback, plain
from bots.core.split import split_message

from .edits import EditScheduler
from .mrkdwn import escape
from .render import (
    MAX_PART,
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

ANSWERS = ("turn_finished", "turn_failed", "turn_cancelled")

# Refusals that no retry can change: the channel is gone or closed to the bot, or the bot's token is.
REFUSED = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "restricted_action", "team_access_not_granted",
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "missing_scope",
})
_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


def classify(exc: Exception) -> Failure:
    if isinstance(exc, SlackCallError):
        reason = f"{exc.method} {exc.error}" + (f" (HTTP {exc.status})" if exc.status else "")
        if exc.status == 429:
            return Failure.later(reason, exc.retry_after)
        if exc.error in REFUSED:
            return Failure.refused(reason)
        return Failure.later(reason) if exc.retryable else Failure.unexpected(reason)
    if isinstance(exc, (TimeoutError, aiohttp.ClientError, OSError)):
        return Failure.later(type(exc).__name__)
    return Failure.unexpected(type(exc).__name__)


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
        self._cards: BoundedCache[tuple[str, str], str] = BoundedCache(5_000)  # (conversation, approval) -> ts
        # What the live stream had shown when a turn was cancelled: kept for a retried notice.
        self._partials: BoundedCache[tuple[str, str], str] = BoundedCache(1_000)

    @activity.defn(name=DELIVER_ACTIVITY)
    async def deliver(self, d: Delivery) -> None:
        attempt = activity.info().attempt if activity.in_activity() else 1
        await deliver_with_fallback(d, attempt, lambda: self.deliver_once(d, attempt),
                                    lambda: self.deliver_plain(d), classify, "Slack")

    async def deliver_once(self, d: Delivery, attempt: int = 1) -> None:
        channel, thread = d.meta.get("channel", ""), d.meta.get("thread", "")
        team = d.meta.get("team", "")
        if not channel:
            raise ApplicationError(f"delivery {d.kind} of {d.conversation_id!r} has no channel", non_retryable=True)
        lookup = _Lookup(self.web, channel, thread, oldest=d.turn_id)
        if d.kind in ANSWERS:
            partial = self._partial(d)
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

    def _partial(self, d: Delivery) -> str | None:
        key = (d.conversation_id, d.turn_id)
        partial = self.streams.stop(d.conversation_id, d.turn_id)
        if partial is not None:
            self._partials[key] = partial
        return self._partials.get(key)

    # ---------------------------------------------------------------- the plain-text fallback
    async def deliver_plain(self, d: Delivery) -> None:
        """The notice as escaped plain text without blocks, under the normal path's metadata keys.

        An earlier attempt may have posted some parts already: those are found by their keys and
        overwritten with their plain text rather than posted again.
        """
        channel, thread, team = d.meta.get("channel", ""), d.meta.get("thread", ""), d.meta.get("team", "")
        lookup = _Lookup(self.web, channel, thread, oldest=d.turn_id)
        if d.kind in ANSWERS:
            placeholder = await self.streams.placeholder(d.conversation_id, d.turn_id)
            for i, part in enumerate(_plain_answer(d, self._partial(d))):
                key = answer_key(d.turn_id, i)
                ts = (placeholder if i == 0 else None) or (await lookup.keys()).get(key)
                if ts:
                    try:
                        await self.editor_for(team).send(channel, ts, part, meta_key=key)
                        continue
                    except SlackCallError as exc:
                        if exc.error not in _GONE:
                            raise
                await self.web.post(channel, thread, part, key=key)
        elif d.kind == "approval_requested" and d.approval is not None:
            key = card_key(d.turn_id, d.approval.id)
            ts = (await lookup.keys()).get(key)
            if ts is None:
                ts = await self.web.post(channel, thread, _plain_card(d), key=key)
            self._remember_card(d.conversation_id, d.approval.id, ts)
        elif d.kind == "approval_decided" and d.approval is not None:
            key = card_key(d.turn_id, d.approval.id)
            ts = self._cards.get((d.conversation_id, d.approval.id)) or (await lookup.keys()).get(key)
            if ts is not None:
                await self.editor_for(team).send(channel, ts, _plain_card(d), meta_key=key)


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


_USER = re.compile(r"[UW][A-Z0-9]+")  # a user id: shown as a mention


def _who(user: str | None) -> str:
    if not user:
        return ""
    return f"<@{user}>" if _USER.fullmatch(user) else escape(plain(user))


def _plain_answer(d: Delivery, partial: str | None) -> list[str]:
    """An answer, failure or cancel notice as plain text parts (no markdown conversion, no blocks)."""
    if d.kind == "turn_finished":
        text = escape(plain(d.text or "").strip()) or "(no answer)"
        if d.tool_calls:
            text += "\n\nTools: " + escape(", ".join(plain(t) for t in d.tool_calls))
    elif d.kind == "turn_failed":
        reason = " ".join(plain(d.text or "unknown error").split())[:300]
        text = (f"Sorry, I could not finish this: {escape(reason)}\n"
                "Write again to retry; if it keeps failing, ask an admin to check the worker logs.")
    else:
        by = f" by {_who(d.by)}" if d.by else ""
        text = "\n\n".join(p for p in (escape(plain(partial or "").strip()), f"Run cancelled{by}.") if p)
    return split_message(text, MAX_PART) or ["(no answer)"]


def _plain_card(d: Delivery) -> str:
    info = d.approval
    assert info is not None
    tool = escape(plain(info.tool))
    if info.status == "pending":
        return (f"Approval needed: {tool} requested by {_who(info.requested_by)}. The buttons could not be "
                "shown; it expires unless decided, and an admin can stop the run with /durabot cancel.")
    by = f" by {_who(info.decided_by)}" if info.decided_by else ""
    return f"{tool}: {info.status}{by}"
