"""Live replies: a placeholder in the thread, then the answer streaming into it as coalesced edits.

Best effort by design: what must arrive (the final text) comes from the delivery activity, which
completes the same placeholder. Each turn's placeholder ts is kept here so the delivery can find it
without a lookup; after a restart the delivery finds it by its metadata key instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable

from agent_core import Agent
from agent_core.events import TextAccumulator

from .edits import EditScheduler
from .ids import ThreadRef
from .render import THINKING, answer_key, live_text
from .web import SlackCallError, SlackWeb

log = logging.getLogger(__name__)

LIVE_IDLE = 900.0  # a stream with no event for this long stops (a long approval wait, a lost turn)
_KEEP = 2_000

TurnKey = tuple[str, str]  # (conversation id, turn id)


class LiveStreams:
    def __init__(self, agent: Agent, web: SlackWeb, editor_for: Callable[[str], EditScheduler]) -> None:
        self.agent = agent
        self.web = web
        self.editor_for = editor_for
        self._placeholders: OrderedDict[TurnKey, asyncio.Future] = OrderedDict()
        self._tasks: dict[TurnKey, asyncio.Task] = {}
        self._partial: dict[TurnKey, str] = {}

    def start(self, ref: ThreadRef, turn_id: str, *, look_first: bool = False) -> None:
        """Post the placeholder and stream into it, in the background (after the event is acked)."""
        key = (ref.conversation_id, turn_id)
        if key in self._placeholders:
            return
        self._placeholders[key] = asyncio.get_running_loop().create_future()
        while len(self._placeholders) > _KEEP:
            _, old = self._placeholders.popitem(last=False)
            old.cancel()
        self._tasks[key] = asyncio.create_task(self._run(ref, turn_id, look_first), name=f"slack-live-{turn_id}")
        self._tasks[key].add_done_callback(lambda _t, k=key: self._tasks.pop(k, None))

    async def placeholder(self, conversation_id: str, turn_id: str, wait: float = 10.0) -> str | None:
        """The placeholder's ts if this process posted (or is posting) it; None when unknown here."""
        fut = self._placeholders.get((conversation_id, turn_id))
        if fut is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(fut), wait)
        except (TimeoutError, asyncio.CancelledError):
            return None

    def stop(self, conversation_id: str, turn_id: str) -> str | None:
        """Stop the live stream of a turn; returns the text it had shown (for a cancelled notice)."""
        key = (conversation_id, turn_id)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()
        return self._partial.pop(key, None)

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for fut in self._placeholders.values():
            fut.cancel()
        self._placeholders.clear()

    async def _run(self, ref: ThreadRef, turn_id: str, look_first: bool) -> None:
        key = (ref.conversation_id, turn_id)
        fut = self._placeholders[key]
        meta_key = answer_key(turn_id, 0)
        ts: str | None = None
        try:
            if look_first:  # a Slack retry: an earlier delivery of this event may have posted it
                ts = (await self.web.find_keys(ref.channel, ref.thread_ts)).get(meta_key)
            if ts is None:
                ts = await self.web.post(ref.channel, ref.thread_ts, THINKING, key=meta_key)
        except SlackCallError as exc:
            log.warning("placeholder for turn %s not posted (%s); the answer will be posted when done",
                        turn_id, exc)
        finally:
            if not fut.done():
                fut.set_result(ts)
        if not ts:
            return
        editor = self.editor_for(ref.team)
        acc = TextAccumulator()
        try:
            async for ev in self.agent.subscribe(ref.conversation_id, turn_id, idle_timeout=LIVE_IDLE):
                changed = acc.feed(ev)
                step = None
                if ev.kind == "tool_started" and ev.tool:
                    step, changed = f"running {ev.tool}", True
                if changed:
                    self._partial[key] = acc.text
                    # Rendering is bounded but CPU work: off the loop, so acks and other threads go on.
                    shown = await asyncio.to_thread(live_text, acc.text, list(acc.tools), step)
                    editor.offer(ref.channel, ts, shown, meta_key)
                if acc.final:
                    break
        except asyncio.CancelledError:
            raise
        except Exception:  # the bus is best effort: the delivery still completes the placeholder
            log.exception("live stream of turn %s stopped", turn_id)
