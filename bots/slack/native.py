"""Slack's native streaming: an answer appended to a streamed reply (chat.startStream /
appendStream / stopStream) instead of edits of a placeholder.

One ``NativeStream`` per turn. Text is appended in coalesced batches (at most one append per
``interval`` per stream, inside the workspace's Tier 4 budget); tool calls show as task cards in the
same stream. A streamed message holds at most ``max_chars`` characters and streams for at most
``max_age`` seconds (Slack ends an unstopped stream after about five minutes): then it is stopped and
the answer goes on in a new message, with an open code fence closed at the seam and opened again.

Each message is stopped with the metadata key ``{turn}:s{n}`` and where in the answer's text it ends,
so the idempotency lookup finds it like any other message of the bot. Until it is stopped a streamed
message has no metadata (chat.startStream takes none), so its ts is recorded durably as soon as it
starts (``on_start``, stream_records.py): a delivery that finds such a message after a restart
completes it, and never posts a second answer beside it.

The final text is written by the ``durabot.deliver`` activity (``finish``), or by the stream itself as
the last word when another replica delivers (see streaming.py). Once the model's final text is in
(``hold``), nothing more is appended live: the end's chat.stopStream follows within moments and carries
the rest, one Web API call (of the Tier 4 budget) fewer for most answers. If no end comes here (the
process dies), the delivery completes the message from what it shows, as after any restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bots.core.ratelimit import SlidingWindow, rate_wait

from .edits import EditScheduler
from .ids import ThreadRef
from .limits import StreamBudget
from .mrkdwn import to_mrkdwn
from .render import segment_key
from .stream_completion import complete_from
from .stream_text import close_fence, cut_at, open_fence, reopen_fence
from .web import MAX_WAIT, SlackCallError, SlackWeb

log = logging.getLogger(__name__)

# A workspace or token that answers these to a streaming call cannot stream: it is remembered, and
# its answers stream by edits of a placeholder.
REFUSALS = frozenset({"unknown_method", "not_allowed_token_type", "missing_scope", "invalid_arguments"})
NOT_STREAMING = "message_not_in_streaming_state"
TASK_TITLE = 120  # characters of a task card's title and output
TASK_OUTPUT = 200


@dataclass(frozen=True)
class StreamLimits:
    max_chars: int = 11_000  # characters a streamed message holds (Slack: 12,000 per call)
    max_age: float = 240.0  # seconds a message streams before the next takes over (Slack: ~300)
    interval: float = 0.8  # seconds between two appends of one stream (while the Tier 4 budget has room)


OnStart = Callable[[int, str], Awaitable[None]]


class Refused(Exception):
    """The workspace refused streaming (``error``); stream this answer by edits instead."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass
class Segment:
    index: int
    ts: str
    started: float
    chars: int = 0
    text: str = ""  # the markdown appended, for an edit when the stream cannot be stopped
    round_start: int = 0  # where in the current round's text this message's share of it begins


def md_chunk(text: str) -> dict:
    return {"type": "markdown_text", "text": text}


def task_chunk(call_id: str, title: str, status: str, output: str | None = None) -> dict:
    chunk = {"type": "task_update", "id": call_id[:64] or "tool", "title": (title or "tool")[:TASK_TITLE],
             "status": status}
    if output:
        chunk["output"] = output[:TASK_OUTPUT]
    return chunk


async def take_slot(window: SlidingWindow, method: str, max_wait: float | None) -> None:
    """Wait for one call of ``window`` and count it; a wait past ``max_wait`` raises a 429 instead."""
    while (wait := window.delay()) > 0:
        if max_wait is not None and wait > max_wait:
            raise SlackCallError(method, "workspace budget exhausted", 429, wait)
        await rate_wait(wait, "slack")
    window.record()


class NativeStream:
    """The streamed reply of one turn: live text and task cards in, rolled over, finished once."""

    def __init__(self, web: SlackWeb, editor: EditScheduler, budget: StreamBudget, ref: ThreadRef, turn_id: str,
                 user: str, limits: StreamLimits, on_start: OnStart | None = None) -> None:
        """``on_start(segment, ts)``: called when a message starts streaming, before anything is
        appended to it (it records the message durably, see stream_records.py)."""
        self.web, self.editor, self.budget = web, editor, budget
        self.on_start = on_start
        self.ref, self.turn_id, self.user, self.limits = ref, turn_id, user, limits
        self.segments: list[Segment] = []
        self.open: Segment | None = None
        self.seam_fence: str | None = None  # the fence to open again at the start of the next message
        self.sent = ""  # the current round's text appended so far
        self.new_round = False  # a tool ran since the last text: the next text starts a new round
        self.diverged = False  # the round's text was taken back (a retried model call): no more appends
        self.text = ""  # the latest visible text offered
        self.tasks: dict[str, dict] = {}  # task cards not sent yet, by tool call id
        self._queued = ""  # text of a round that ended (in a tool call) not appended yet
        self.finished = False
        self.closing = False
        self.held = False  # the final text is in: the rest waits for the stop
        self._lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._last_send = float("-inf")
        self._counted = False  # in the workspace's count of open streams
        self._in_call = False  # the live loop is in a Web API call
        self._rewrite_at: tuple[int, str | None, int] | None = None  # where a rewrite of the answer starts
        self._posted: dict[str, str] = {}  # messages a rewrite posted, by key

    @property
    def started(self) -> bool:
        return bool(self.segments)

    # ---------------------------------------------------------------- live side
    def offer(self, text: str) -> None:
        if text != self.text:
            self.text = text
            self._kick()

    def tool(self, call_id: str, title: str, status: str, output: str | None = None) -> None:
        if status == "in_progress" and not self.new_round:
            # The round that called the tool is over: its text not appended yet goes before the card.
            if not self.diverged and self.text.startswith(self.sent):
                self._queued += self.text[len(self.sent):]
                self.sent = self.text
            self.new_round = True
        self.tasks[call_id] = task_chunk(call_id, title, status, output)
        self._kick()

    async def begin(self) -> None:
        """The first message, with what there is to show now; its start was admitted by the budget.
        Raises ``Refused`` when the workspace cannot stream."""
        async with self._lock:
            try:
                md, tasks, sep = self._pending()
                await self._write(md, tasks, sep, admitted=True)
            except SlackCallError as exc:
                if exc.error in REFUSALS:
                    raise Refused(exc.error) from None
                raise
            # The pace starts after the first append, not after the start: a start carries what there
            # was at the first token, and the text that came during that call shows at once.
        self.budget.streams += 1
        self._counted = True
        self._kick()

    def hold(self) -> None:
        """The model's final text is in: what is not appended yet goes with the stop (``finish``)."""
        self.held = True

    def _kick(self) -> None:
        if not self.segments or self.closing or self.held:
            return  # nothing live before the first message (begin), once the final text is in, or after the end
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"slack-native-{self.turn_id}")
            self._task.add_done_callback(self._ended)
        self._dirty.set()

    def _ended(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:  # best effort: the delivery still finishes
            log.error("live stream of turn %s stopped", self.turn_id, exc_info=task.exception())

    def cancel_live(self) -> None:
        if self._counted:
            self.budget.streams -= 1
            self._counted = False
        self.closing = True
        # Never cancelled in the middle of a call: an append that reached Slack must be counted as
        # sent, or the end would append it again. The loop ends after that call instead.
        if self._task is not None and not self._in_call:
            self._task.cancel()
        self._dirty.set()

    async def _run(self) -> None:
        while not self.closing:
            timeout = None
            if self.open is not None:
                timeout = max(0.0, self.open.started + self.limits.max_age - time.monotonic())
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout)
            except TimeoutError:  # quiet until the message's age limit (a long tool call): stop it now
                async with self._lock:
                    if not self.closing and self.open is not None and self._aged(self.open):
                        self._in_call = True
                        try:
                            await self._live_call(self._seal(""))
                        finally:
                            self._in_call = False
                continue
            wait = self._last_send + self.budget.append_interval(self.limits.interval) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # coalesce what comes meanwhile into one append
            await _slot_free(self.budget.append)
            self._dirty.clear()
            async with self._lock:
                if self.closing or self.held:
                    return
                self._last_send = time.monotonic()  # the pace counts from the start of a call
                md, tasks, sep = self._pending()
                self._in_call = True
                try:
                    await self._live_call(self._write(md, tasks, sep))
                finally:
                    self._in_call = False

    async def _live_call(self, call) -> None:  # type: ignore[no-untyped-def]
        try:
            await call
        except SlackCallError as exc:  # best effort: what was not sent is sent with the next batch
            if exc.status == 429:
                self.budget.append.pause(exc.retry_after or 1.0)
            if exc.error == NOT_STREAMING and self.open is not None:
                self.open.started = float("-inf")  # Slack ended it early: the next batch rolls over
                self._dirty.set()
            log.info("live stream of turn %s: %s", self.turn_id, exc)

    def _pending(self) -> tuple[str, list[dict], int]:
        """(markdown to append, task cards, how many leading characters of it are not the current
        round's text) for what was offered since the last append."""
        tasks, self.tasks = list(self.tasks.values()), {}
        md, skip = self._compose(self.text)
        if md is None:
            log.info("live text of turn %s was taken back; the final text replaces it", self.turn_id)
            self.diverged = True
            md, skip = self._queued, len(self._queued)
            self._queued = ""
        return md, tasks, skip

    def _compose(self, text: str) -> tuple[str | None, int]:
        """(what to append for ``text``, how many leading characters of it are not its round's text);
        None when ``text`` does not continue what was appended."""
        queued = self._queued
        if self.diverged:
            return None, 0
        if self.new_round and text and not text.startswith(self.sent):  # the model answers again after its tools
            self._queued, self.sent, self.new_round = "", "", False
            sep = "\n\n" if self._has_text() or queued else ""
            return queued + sep + text, len(queued) + len(sep)
        if text.startswith(self.sent):
            self._queued = ""
            return queued + text[len(self.sent):], len(queued)
        return None, 0
    def _has_text(self) -> bool:
        return any(s.chars for s in self.segments)

    def _aged(self, seg: Segment) -> bool:
        return time.monotonic() - seg.started >= self.limits.max_age

    # ---------------------------------------------------------------- writing, with rollover
    async def _write(self, md: str, tasks: list[dict], sep: int = 0, *, admitted: bool = False) -> None:
        """Append ``md`` and ``tasks``, rolling over to new messages before the size or age limit.
        ``md`` starts with ``sep`` characters that are not the round's text (a paragraph break)."""
        skip = sep
        while True:
            seg = self.open
            if seg is None:
                if not md and not tasks:
                    return
                prefix = reopen_fence(self.seam_fence)
                room = self.limits.max_chars - len(prefix)
                k = cut_at(md, room)
                piece = md[:k]
                chunks = ([md_chunk(prefix + piece)] if prefix or piece else []) + tasks
                if not admitted:  # a rollover: the answer goes on as soon as a start is free
                    await take_slot(self.budget.start, "chat.startStream", None)
                admitted = False
                ts = await self.web.start_stream(self.ref.channel, self.ref.thread_ts, chunks, team=self.ref.team,
                                                 user=self.user)
                self.open = Segment(len(self.segments), ts, time.monotonic(), round_start=len(self.sent))
                self.segments.append(self.open)
                if self.on_start is not None:
                    await self.on_start(self.open.index, ts)
                self.seam_fence = None
                self._sent_piece(self.open, prefix, piece, skip)
                skip = max(0, skip - len(piece))
                md, tasks = md[k:], []
                continue
            room = self.limits.max_chars - seg.chars - len(close_fence("```x"))
            if self._aged(seg) or len(md) > room:
                k = 0 if self._aged(seg) else cut_at(md, room)
                piece, md = md[:k], md[k:]
                await self._seal(piece, skip=skip)
                skip = max(0, skip - len(piece))
                continue
            if md or tasks:
                self.budget.append.record()
                await self.web.append_stream(self.ref.channel, seg.ts, ([md_chunk(md)] if md else []) + tasks)
                self._sent_piece(seg, "", md, skip)
            return

    def _sent_piece(self, seg: Segment, prefix: str, piece: str, skip: int) -> None:
        seg.text += prefix + piece
        seg.chars += len(prefix) + len(piece)
        self.sent += piece[skip:]

    async def _seal(self, piece: str, *, skip: int = 0, final: bool = False, blocks: list[dict] | None = None,
                    tasks: list[dict] | None = None, max_wait: float | None = None) -> None:
        """Stop the open message after ``piece``, keyed, with a closing fence when one is open."""
        seg = self.open
        assert seg is not None
        shown = self.sent + piece[skip:]  # the round's text up to the end of this message
        fence = None if final else open_fence(shown)
        tail = piece + close_fence(fence)
        payload = {"end": len(shown), "head": shown[:40], "final": final}
        await take_slot(self.budget.stop, "chat.stopStream", max_wait)
        chunks = ([md_chunk(tail)] if tail else []) + (tasks or [])
        try:
            await self.web.stop_stream(self.ref.channel, seg.ts, chunks, key=segment_key(self.turn_id, seg.index),
                                       payload=payload, blocks=blocks)
        except SlackCallError as exc:
            if exc.error != NOT_STREAMING:
                raise
            # Slack ended the stream already (it expired): the message gets its text by an edit instead.
            await self.editor.send(self.ref.channel, seg.ts, to_mrkdwn(seg.text + tail) or "…", blocks=blocks,
                                   meta_key=segment_key(self.turn_id, seg.index))
        seg.text += tail
        seg.chars += len(tail)
        self.sent += piece[skip:]
        self.seam_fence = fence
        self.open = None

    # ---------------------------------------------------------------- the end
    async def finish(self, outcome: str, text: str | None, notice: str | None,
                     blocks: list[dict] | None = None) -> None:
        """Write the end of the answer and stop the stream, once (later calls return at once).
        ``outcome``: finished (``text`` is the answer), or failed / cancelled (``notice`` is appended)."""
        self.cancel_live()
        async with self._lock:
            if self.finished:
                return
            tasks, self.tasks = list(self.tasks.values()), {}
            text = text or ""
            if outcome != "finished":
                md = self._queued + "\n\n" + (notice or "")
                await self._end(md, tasks, blocks, sep=len(md))
            else:
                md, skip = self._compose(text)
                if md is None:
                    await self._rewrite(text, blocks)
                else:
                    await self._end(md, tasks, blocks, sep=skip)
            self.finished = True

    async def _end(self, md: str, tasks: list[dict], blocks: list[dict] | None, sep: int = 0) -> None:
        # The rest goes with the stop when it fits the open message (one call); else it is appended,
        # rolling over as needed, and the last message is stopped after it.
        if self.open is not None and not self._aged(self.open) and len(md) <= self.limits.max_chars - self.open.chars:
            await self._seal(md, skip=sep, final=True, blocks=blocks, tasks=tasks, max_wait=MAX_WAIT)
            return
        await self._write(md, tasks, sep)
        if self.open is not None:
            await self._seal("", final=True, blocks=blocks, max_wait=MAX_WAIT)
        # else the last message was stopped by its age right at the end: it ends where the answer ends

    async def _rewrite(self, text: str, blocks: list[dict] | None) -> None:
        """The streamed text differs from the answer (a retried model call): the open message is stopped
        and edited to show the answer from where its share began; what does not fit follows. With no
        message open (all stopped: a long wait for an approval, say), the answer follows them in
        messages of its own. Safe to repeat: a retry edits the same message and skips what it posted."""
        if self._rewrite_at is None:
            if self.open is None:
                self._rewrite_at = (len(self.segments), None, 0)
            else:
                seg = self.open
                await self._seal("", max_wait=MAX_WAIT)
                self._rewrite_at = (seg.index, seg.ts, seg.round_start)
        index, ts, start = self._rewrite_at
        start = min(start, len(text))
        await complete_from(self.web, self.editor, self.ref.channel, self.ref.thread_ts, self.turn_id, index, ts,
                            reopen_fence(open_fence(text[:start])) + text[start:], blocks, self._posted)


async def _slot_free(window: SlidingWindow) -> None:
    """Wait until ``window`` has room (counted by the caller when it sends)."""
    while (wait := window.delay()) > 0:
        await rate_wait(wait, "slack")
