"""One workspace's chat.update traffic: live text coalesced, final edits first, within the budget.

Every chat.update of a workspace goes through one ``EditScheduler`` because Slack's limit (~50 a
minute) is shared by every thread that streams at once. Live text is coalesced: a thread has at most
one pending edit, replaced by newer text, and the threads take turns (the one shown longest ago goes
first, a thread's first text before anything else). Final edits (answers, cards) jump the queue, and
live edits always leave room in the window for the finals of the streams still open, so a final is
never starved by streaming.

How often one message is edited follows how many stream at once (``fair_interval``): every
``LIVE_MIN_INTERVAL`` while the window has room for another round of all of them, so the few threads
that stream by edits beside natively streamed ones get the budget the others leave unused; when it
runs short, each message its fair share of the window.

Per-message state lives only while the message streams: ``close`` (called by the stream when its turn
ends, wherever the final was delivered) forgets it. The maps are bounded all the same, and a message
left open by mistake stops counting after ``OPEN_STALE`` seconds without live text, so a leak can
never shrink the workspace's room for live edits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from agent_core.metrics import rate_limit_wait_seconds_total
from bots.core.cache import BoundedCache
from bots.core.ratelimit import SlidingWindow

from .limits import fair_interval, update_window
from .web import MAX_WAIT, SlackCallError, SlackWeb

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (channel, message ts)

LIVE_MIN_INTERVAL = 1.0  # seconds between two live edits of one message, while the budget has room
FINAL_WAIT = 40.0  # a final edit not sent by then goes back to Temporal for a later retry
OPEN_STALE = 1_800.0  # seconds without live text after which an open message no longer counts
_CLOSED_KEEP = 5_000
_OPEN_KEEP = 5_000


@dataclass
class _Edit:
    key: Key
    text: str
    blocks: list[dict] | None = None
    meta_key: str | None = None
    future: asyncio.Future | None = None  # set for final edits: the caller waits for the outcome
    queued_at: float = field(default_factory=time.monotonic)


class EditScheduler:
    def __init__(self, web: SlackWeb, window: SlidingWindow | None = None) -> None:
        self.web = web
        self.window = window or update_window()
        self._finals: deque[_Edit] = deque()
        self._live: dict[Key, _Edit] = {}  # at most one pending live edit per open message
        self._last: BoundedCache[Key, float] = BoundedCache(_OPEN_KEEP)  # when each was last edited
        # messages streaming now: each still needs a final edit
        self._open: BoundedCache[Key, None] = BoundedCache(_OPEN_KEEP, ttl=OPEN_STALE)
        self._closed: BoundedCache[Key, None] = BoundedCache(_CLOSED_KEEP)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.sent = 0

    # ---------------------------------------------------------------- callers
    def offer(self, channel: str, ts: str, text: str, meta_key: str | None = None) -> None:
        """Show ``text`` in the message soon (best effort; replaces text not shown yet)."""
        key = (channel, ts)
        if key in self._closed:
            return
        self._open.add(key)
        self._live[key] = _Edit(key, text, meta_key=meta_key)
        self._kick()

    def close(self, channel: str, ts: str) -> bool:
        """No more live text for this message (its final edit is sent, or the stream ended): a pending
        live edit is dropped and a failed one is not retried. True if an edit of this scheduler reached
        the message (or is on its way), so a write after it may be needed to have the last word."""
        key = (channel, ts)
        self._live.pop(key, None)
        self._open.pop(key, None)
        self._closed.add(key)
        return self._last.pop(key, None) is not None

    def open_count(self) -> int:
        """Messages streaming now (stale ones expire as they are counted)."""
        return sum(1 for key in self._open if key in self._open)

    async def send(self, channel: str, ts: str, text: str, *, blocks: list[dict] | None = None,
                   meta_key: str | None = None, final: bool = True) -> None:
        """Edit the message now (ahead of live text) and wait for the outcome; raises SlackCallError."""
        key = (channel, ts)
        if final:
            self._live.pop(key, None)  # no older live text may land after the final text
        waiting = self.window.delay()
        if waiting > MAX_WAIT:
            raise SlackCallError("chat.update", "workspace budget exhausted", 429, waiting)
        edit = _Edit(key, text, blocks, meta_key, asyncio.get_running_loop().create_future())
        self._finals.append(edit)
        self._kick()
        try:
            await asyncio.wait_for(asyncio.shield(edit.future), FINAL_WAIT)  # type: ignore[arg-type]
        except TimeoutError:
            if edit in self._finals:
                self._finals.remove(edit)
            raise SlackCallError("chat.update", "workspace budget busy", 429, 5.0) from None
        finally:
            if final:
                self.close(channel, ts)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for edit in self._finals:
            if edit.future and not edit.future.done():
                edit.future.set_exception(SlackCallError("chat.update", "adapter stopping", 503))
        self._finals.clear()

    # ---------------------------------------------------------------- the loop
    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="slack-edits")
        self._wake.set()

    @staticmethod
    def _reserve(streams: int) -> int:
        return streams + 2  # a final for every open stream, and room for approval cards

    def _next(self) -> tuple[_Edit | None, float, float]:
        """The edit to send now, or how long to wait before looking again and how much of that wait
        the rate budget imposes (the rest is the per-message live interval, or nothing to do)."""
        now = time.monotonic()
        while self._finals and self._finals[0].future is not None and self._finals[0].future.done():
            self._finals.popleft()
        if self._finals:
            delay = self.window.delay(now=now)
            return (self._finals.popleft(), 0.0, 0.0) if delay <= 0 else (None, delay, delay)
        if not self._live:
            return None, 3600.0, 0.0
        never = float("-inf")
        key = min(self._live, key=lambda k: self._last.get(k, never))
        streams = self.open_count()
        reserve = self._reserve(streams)
        budget = self.window.delay(reserve, now=now)
        interval = fair_interval(self.window, LIVE_MIN_INTERVAL, max(1, streams), reserve, now)
        delay = max(budget, self._last.get(key, never) + interval - now)
        if delay > 0:
            return None, delay, budget
        return self._live.pop(key), 0.0, 0.0

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            edit, delay, held = self._next()
            if edit is None:
                start = time.monotonic()
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
                if held > 0:
                    waited = min(time.monotonic() - start, held)
                    rate_limit_wait_seconds_total.labels(platform="slack").inc(waited)
                continue
            await self._send(edit)

    async def _send(self, edit: _Edit) -> None:
        channel, ts = edit.key
        self.window.record()
        self._last[edit.key] = time.monotonic()
        try:
            await self.web.update(channel, ts, edit.text, key=edit.meta_key, blocks=edit.blocks)
        except SlackCallError as exc:
            if exc.status == 429:
                self.window.pause(exc.retry_after or 1.0)
            if edit.future is not None:
                if not edit.future.done():
                    edit.future.set_exception(exc)
            elif exc.retryable and edit.key not in self._live and edit.key not in self._closed:
                self._live[edit.key] = edit  # live text is retried unless newer text came meanwhile
            else:
                log.info("live edit of %s dropped: %s", edit.key, exc)
            return
        self.sent += 1
        if edit.future is not None and not edit.future.done():
            edit.future.set_result(None)
