"""The durable side: Slack's deliverer, what the ``durabot.deliver`` activity puts in Slack.

At least once in, exactly once visible: every message the bot posts carries a metadata key
(``{turn}:{part}`` for answer parts, ``{turn}:{approval}`` for cards, ``{turn}:s{n}`` for natively
streamed messages). A first attempt trusts what this process knows; a retried attempt (or one that
does not know the placeholder, after a restart) first reads the thread and skips what an earlier
attempt already posted. Edits are idempotent by nature.

A natively streamed answer is finished by its stream when this process streams it. Otherwise the
thread shows it: its stopped messages (keyed, with where in the answer each ends) and at most one
message still streaming, or left unstopped by a process that died (it has no metadata yet: it is
known by its ts, which the process that started it recorded in the database). The
delivery gives a live stream elsewhere a moment to stop by itself, then completes the answer: the
unstopped message is stopped and edited to carry the rest of the final text, what does not fit
follows as new messages, and nothing is posted twice.

Failures are sorted as on every platform (see bots/core/delivery.py): rate limits and outages are
retried, refusals for good are not, and anything else is retried a few times and then sent as plain
text (the ``plain_*`` methods): the same notice, escaped, without blocks, under the same keys.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable

from temporalio.exceptions import ApplicationError

from agent_core.blobs import BlobStore
from agent_core.contract import DeliveryKind
from agent_core.types import BlobRef, Delivery
from bots.core.cache import BoundedCache
from bots.core.delivery import Failure, plain, transport_failure
from bots.core.fallback_text import PlainWords, plain_answer, plain_card
from bots.core.uploads import UploadLimits, deliver_files

from .assistant import AssistantThreads
from .edits import EditScheduler
from .ids import ThreadRef
from .limits import UPLOAD_BYTES, UPLOAD_FILES
from .mrkdwn import escape
from .native import NOT_STREAMING, take_slot
from .stream_completion import Streamed, complete_from
from .render import (
    MAX_PART,
    answer_blocks,
    answer_key,
    card_blocks,
    card_key,
    ended_parts,
    end_blocks,
    metadata_key,
    metadata_payload,
    run_link_block,
    with_run_link,
)
from .stream_text import reopen_fence
from .streaming import LiveStreams, notice
from .web import MAX_PAGES, MAX_WAIT, SlackCallError, SlackWeb
from .workspaces import NOT_INSTALLED, team_of

log = logging.getLogger(__name__)

# Refusals that no retry can change: the channel is gone or closed to the bot, or the bot's token is.
REFUSED = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "restricted_action", "team_access_not_granted",
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "missing_scope",
    NOT_INSTALLED,  # the workspace removed the app: nothing goes there any more
})
_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
OWNER_CHECKS = (1.0, 1.5, 2.0)  # seconds between looks at a stream another process may still stop itself


def classify(exc: Exception) -> Failure:
    if isinstance(exc, SlackCallError):
        reason = f"{exc.method} {exc.error}" + (f" (HTTP {exc.status})" if exc.status else "")
        if exc.status == 429:
            return Failure.later(reason, exc.retry_after)
        if exc.error in REFUSED:
            return Failure.refused(reason)
        return Failure.later(reason) if exc.retryable else Failure.unexpected(reason)
    return transport_failure(exc)


def _no_link(_d: Delivery) -> str | None:
    return None


def _target(d: Delivery) -> tuple[str, str, str]:
    """(team, channel, thread) the notice goes to, from the meta ingress gave the workflow."""
    channel = d.meta.get("channel", "")
    if not channel:
        raise ApplicationError(f"delivery {d.kind} of {d.conversation_id!r} has no channel", non_retryable=True)
    return team_of(d), channel, d.meta.get("thread", "")


class SlackDeliverer:
    """Slack's half of ``durabot.deliver`` (see bots/core/delivery.py for the activity itself)."""

    platform = "Slack"

    def __init__(self, web: SlackWeb, editor_for: Callable[[str], EditScheduler], streams: LiveStreams,
                 run_link: Callable[[Delivery], str | None] = _no_link,
                 assistant: AssistantThreads | None = None, blobs: BlobStore | None = None) -> None:
        """``run_link`` gives the Temporal UI address of a delivery's run (None: no link shown);
        ``assistant`` clears an AI-app thread's working status once the answer is in;
        ``blobs``: where the files a turn's tools made are read from (None: answers go without them)."""
        self.web = web
        self.assistant = assistant
        self.blobs = blobs
        self.editor_for = editor_for
        self.streams = streams
        self.run_link = run_link
        self._cards: BoundedCache[tuple[str, str], str] = BoundedCache(5_000)  # (conversation, approval) -> ts
        # What the live stream had shown when a turn was cancelled: kept for a retried notice.
        self._partials: BoundedCache[tuple[str, str], str] = BoundedCache(1_000)

    def classify(self, exc: Exception) -> Failure:
        return classify(exc)

    async def answer(self, d: Delivery, attempt: int = 1) -> None:
        team, channel, thread = _target(d)
        outcome = d.kind.value.removeprefix("turn_")
        link = self.run_link(d)
        rated = (d.conversation_id, d.turn_id) if d.kind is DeliveryKind.TURN_FINISHED else None
        stream = await self.streams.native(d.conversation_id, d.turn_id)
        if stream is not None:  # streamed by this process: the stream writes the rest and stops
            self._partial(d)  # (stops the live follow first)
            await stream.finish(outcome, d.text, notice(outcome, d.text, d.by), end_blocks(link, rated))
            lookup = _Lookup(self.web, channel, thread, oldest=d.turn_id)
            await self._files(d, channel, thread, lookup)
            await self._answered(d, team, channel, thread)
            return
        # The same rendering as a streaming replica's last word (streaming.py), so the two never differ.
        parts = ended_parts(outcome, d.text, d.tool_calls, partial=self._partial(d), by=d.by)
        lookup = _Lookup(self.web, channel, thread, oldest=d.turn_id)
        placeholder = await self.streams.placeholder(d.conversation_id, d.turn_id)
        if placeholder is None:  # not posted by this process: maybe by one before a restart
            placeholder = (await lookup.keys()).get(answer_key(d.turn_id, 0))
            if placeholder is None and (streamed := await self._streamed(lookup, d.conversation_id, d.turn_id)):
                await self._complete_stream(d, streamed, lookup, link, rated)
                await self._files(d, channel, thread, lookup)
                await self._answered(d, team, channel, thread)
                return
        for i, part in enumerate(parts):
            key = answer_key(d.turn_id, i)
            last = i == len(parts) - 1  # the link and the feedback buttons end the answer
            blocks = answer_blocks(part, link if last else None, rated if last else None)
            if i == 0 and placeholder:
                await self.editor_for(team).send(channel, placeholder, part, blocks=blocks, meta_key=key)
                continue
            if (attempt > 1 or not placeholder) and key in await lookup.keys():
                continue  # an earlier attempt posted this part
            await self.web.post(channel, thread, part, key=key, blocks=blocks)
        await self._files(d, channel, thread, lookup)
        await self._answered(d, team, channel, thread)

    async def _answered(self, d: Delivery, team: str, channel: str, thread: str) -> None:
        if self.assistant is not None:
            await self.assistant.answered(ThreadRef(team, channel, thread), d.turn_id)

    async def _files(self, d: Delivery, channel: str, thread: str, lookup: "_Lookup") -> None:
        """The turn's files, after its text (see bots/core/uploads.py)."""
        if d.files and d.kind == DeliveryKind.TURN_FINISHED and self.blobs is not None:
            await deliver_files(d, self.blobs, _SlackUploader(self.web, channel, thread, d, lookup),
                                UploadLimits(UPLOAD_BYTES, UPLOAD_FILES), self.platform)

    async def _streamed(self, lookup: _Lookup, conversation_id: str, turn_id: str) -> Streamed:
        """The turn's natively streamed messages as the thread shows them. A stopped one carries its key;
        one not stopped (yet) has no metadata and is known by its ts, recorded when it started (see
        stream_records.py); failing that (no record: the process died right after the start), by a
        ``streaming_state`` field, which Slack shows on a streamed message but does not document."""
        found = Streamed()
        records = self.streams.records
        recorded = await records.of_turn(conversation_id, turn_id) if records is not None else set()
        mine = self.streams.native_ts(but=(conversation_id, turn_id))  # live streams of other turns here
        prefix = f"{turn_id}:s"
        for m in await lookup.messages():
            key = metadata_key(m)
            ts = str(m.get("ts") or "")
            if key and key.startswith(prefix) and key[len(prefix):].isdigit():
                found.stopped.setdefault(int(key[len(prefix):]), (ts, metadata_payload(m)))
            elif not key and found.unstopped is None and (
                    ts in recorded or (m.get("streaming_state") and m.get("bot_id") and ts not in mine)):
                found.unstopped, found.unstopped_text = ts, str(m.get("text") or "")
        return found

    async def _complete_stream(self, d: Delivery, streamed: Streamed, lookup: _Lookup, link: str | None,
                               rated: tuple[str, str] | None = None) -> None:
        team, channel, thread = _target(d)
        outcome = d.kind.value.removeprefix("turn_")
        text = (d.text or "") if outcome == "finished" else ""
        for delay in OWNER_CHECKS:  # a stream still open may be another replica's, about to stop it
            if streamed.unstopped is None:
                break
            await asyncio.sleep(delay)
            lookup = _Lookup(self.web, channel, thread, oldest=d.turn_id)
            streamed = await self._streamed(lookup, d.conversation_id, d.turn_id)
        if streamed.complete(text) if outcome == "finished" else streamed.ended():
            return  # stopped, with all of the answer, by the process that streamed it
        index, start, fence = streamed.resume_at(text)
        if outcome == "finished":
            rest = reopen_fence(fence) + text[start:]
        else:
            shown = streamed.unstopped_text if streamed.unstopped else ""
            rest = (shown + "\n\n" if shown else "") + (notice(outcome, d.text, d.by) or "")
        ts = streamed.unstopped
        if ts:
            budget = self.streams.budget_for(team) if self.streams.budget_for else None
            if budget is not None:
                await take_slot(budget.stop, "chat.stopStream", MAX_WAIT)
            try:
                await self.web.stop_stream(channel, ts)
            except SlackCallError as exc:
                if exc.error != NOT_STREAMING:  # expired: an edit completes it all the same
                    raise
        log.info("completing the streamed answer of turn %s in %s from message %d", d.turn_id, channel, index)
        await complete_from(self.web, self.editor_for(team), channel, thread, d.turn_id, index, ts, rest,
                            end_blocks(link, rated), await lookup.keys())

    async def card(self, d: Delivery, attempt: int = 1) -> None:
        _team, channel, thread = _target(d)
        assert d.approval is not None
        key = card_key(d.turn_id, d.approval.id)
        lookup = _Lookup(self.web, channel, thread, oldest=d.turn_id)
        ts = (await lookup.keys()).get(key) if attempt > 1 else None
        if ts is None:
            text, blocks = card_blocks(d.conversation_id, d.approval)
            ts = await self.web.post(channel, thread, text, key=key, blocks=blocks)
        self._cards[(d.conversation_id, d.approval.id)] = ts

    async def decided_card(self, d: Delivery, attempt: int = 1) -> None:
        team, channel, _thread = _target(d)
        assert d.approval is not None
        ts = await self._card_ts(d)
        if ts is None:
            log.warning("card of approval %s in %s not found; decision not shown", d.approval.id,
                        d.conversation_id)
            return
        text, blocks = card_blocks(d.conversation_id, d.approval)
        await self.editor_for(team).send(channel, ts, text, blocks=blocks, meta_key=card_key(d.turn_id, d.approval.id))

    async def _card_ts(self, d: Delivery) -> str | None:
        """The card's message: known to this process, or found in the thread by its key."""
        assert d.approval is not None
        _team, channel, thread = _target(d)
        ts = self._cards.get((d.conversation_id, d.approval.id))
        if ts is None:
            ts = (await _Lookup(self.web, channel, thread, oldest=d.turn_id).keys()).get(
                card_key(d.turn_id, d.approval.id))
        return ts

    def _partial(self, d: Delivery) -> str | None:
        key = (d.conversation_id, d.turn_id)
        partial = self.streams.stop(d.conversation_id, d.turn_id)
        if partial is not None:
            self._partials[key] = partial
        return self._partials.get(key)

    # ---------------------------------------------------------------- the plain-text fallback
    # The notice as escaped plain text without blocks, under the normal path's metadata keys: parts an
    # earlier attempt posted are found by their keys and overwritten rather than posted again.
    async def plain_answer(self, d: Delivery) -> None:
        team, channel, thread = _target(d)
        lookup = _Lookup(self.web, channel, thread, oldest=d.turn_id)
        if streamed := await self._streamed(lookup, d.conversation_id, d.turn_id):
            self._partial(d)  # a stream of this process stops here: its messages are completed as text
            await self._complete_stream(d, streamed, lookup, None)
            return
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
        await self._files(d, channel, thread, lookup)
        await self._answered(d, team, channel, thread)

    async def plain_card(self, d: Delivery) -> None:
        _team, channel, thread = _target(d)
        assert d.approval is not None
        key = card_key(d.turn_id, d.approval.id)
        ts = (await _Lookup(self.web, channel, thread, oldest=d.turn_id).keys()).get(key)
        if ts is None:
            ts = await self.web.post(channel, thread, _plain_card(d), key=key)
        self._cards[(d.conversation_id, d.approval.id)] = ts

    async def plain_decided_card(self, d: Delivery) -> None:
        team, channel, _thread = _target(d)
        assert d.approval is not None
        ts = await self._card_ts(d)
        if ts is not None:
            await self.editor_for(team).send(channel, ts, _plain_card(d), meta_key=card_key(d.turn_id, d.approval.id))


class _SlackUploader:
    """Slack's file I/O for one delivery (see ``bots.core.uploads.Uploader``)."""

    def __init__(self, web: SlackWeb, channel: str, thread: str, d: Delivery, lookup: "_Lookup") -> None:
        self.web, self.channel, self.thread, self.d, self.lookup = web, channel, thread, d, lookup

    async def uploaded(self) -> set[tuple[str, int]]:
        return await self.web.shared_files(self.channel, self.thread, oldest=self.d.turn_id)

    def shown_name(self, ref: BlobRef) -> str:
        return ref.name

    async def upload(self, ref: BlobRef, data: bytes) -> None:
        await self.web.upload(self.channel, self.thread, ref.name, data)

    async def note(self, text: str) -> None:
        key = f"{self.d.turn_id}:files"
        if key not in await self.lookup.keys():
            await self.web.post(self.channel, self.thread, escape(text), key=key)


class _Lookup:
    """The thread's keyed messages, read at most once per delivery attempt and only when needed.

    Only messages after ``oldest`` (the turn's own message: everything posted for the turn is later)."""

    def __init__(self, web: SlackWeb, channel: str, thread: str, oldest: str | None = None) -> None:
        self.web, self.channel, self.thread, self.oldest = web, channel, thread, oldest
        self._messages: list[dict] | None = None

    async def messages(self) -> list[dict]:
        if self._messages is None:
            self._messages = await self.web.thread_messages(self.channel, self.thread, oldest=self.oldest,
                                                            pages=MAX_PAGES)
        return self._messages

    async def keys(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for m in await self.messages():
            key = metadata_key(m)
            if key and m.get("ts"):
                found.setdefault(key, str(m["ts"]))
        return found


_USER = re.compile(r"[UW][A-Z0-9]+")  # a user id: shown as a mention


def _who(user: str | None) -> str:
    if not user:
        return ""
    return f"<@{user}>" if _USER.fullmatch(user) else escape(plain(user))


WORDS = PlainWords(
    escape=escape, who=_who, no_answer="(no answer)",
    failed_hint="Write again to retry; if it keeps failing, ask an admin to check the worker logs.",
)


def _plain_answer(d: Delivery, partial: str | None) -> list[str]:
    return plain_answer(d, partial, WORDS, MAX_PART)


def _plain_card(d: Delivery) -> str:
    return plain_card(d, WORDS)
