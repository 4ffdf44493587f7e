"""Live replies: a placeholder in the thread, then the answer streaming into it as coalesced edits.

The turn is followed by ``bots.core.follow``; this module is its Slack sink: the placeholder, the
workspace's edit scheduler, and the last word on the placeholder when another replica delivers.

Best effort by design: what must arrive (the final text) comes from the delivery activity, which
completes the same placeholder. Each turn's placeholder ts is kept here so the delivery can find it
without a lookup; after a restart the delivery finds it by its metadata key instead.

With several adapter replicas, the delivery may run on another replica than the one streaming (all of
them poll the same delivery task queue), so a stream does not wait to be stopped by a delivery: it
watches its turn and ends with it.

- It learns the end from the workflow's ``turn`` query, which the follower asks when the bus brings
  the model's final text (the turn ends a moment later) and whenever the bus has been quiet for a
  while. A query adds nothing to the workflow's history and holds none of its ten update slots, where
  a progress long poll per streamed turn would do both.
- It then closes its edit state at once: no live edit of this process is sent, or retried after a
  429, from then on.
- If an edit of this process may have reached the message, and this process's own delivery does not
  take over within ``FINAL_GRACE``, it writes the final first part itself, rendered exactly as the
  delivery renders it. Whatever order its writes and the other replica's land in, the last one to
  land shows the final text.
- A placeholder that had to wait for the channel's post budget is not posted if its turn ended
  meanwhile: the delivery elsewhere may already have looked for it, found nothing and posted the
  answer on its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from prometheus_client import Gauge
from temporalio.client import WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCError

from agent_core import Agent
from agent_core.metrics import REGISTRY
from agent_core.types import Delivery, TurnStatus
from bots.core.cache import BoundedCache
from bots.core.follow import Follower

from .edits import EditScheduler
from .ids import ThreadRef
from .render import THINKING, answer_blocks, answer_key, ended_parts, live_text
from .web import SlackCallError, SlackWeb

log = logging.getLogger(__name__)

LIVE_IDLE = 900.0  # a stream with no event for this long stops (a long approval wait, a lost turn)
FINAL_GRACE = 1.0  # seconds for this process's own delivery to take the final edit over
QUERY_TIMEOUT = 5.0
_KEEP = 2_000

TurnKey = tuple[str, str]  # (conversation id, turn id)

open_streams = Gauge(
    "slack_open_streams",
    "Turns this Slack adapter process streams into a placeholder now; each holds per-thread edit state "
    "until its turn ends, wherever the final answer is delivered. Stays high only while turns run.",
    namespace="durabot", registry=REGISTRY,
)


def _no_link(_d: Delivery) -> str | None:
    return None


def final_first_part(st: TurnStatus, partial: str | None) -> tuple[str, bool]:
    """The first message of an ended turn as the delivery writes it, and whether it is the only one."""
    text = st.error if st.state == "failed" else st.text
    parts = ended_parts(st.state, text, st.tool_calls, partial=partial, by=st.cancelled_by)
    return parts[0], len(parts) == 1


class LiveStreams:
    def __init__(self, agent: Agent, web: SlackWeb, editor_for: Callable[[str], EditScheduler],
                 run_link: Callable[[Delivery], str | None] = _no_link) -> None:
        self.agent = agent
        self.web = web
        self.editor_for = editor_for
        self.run_link = run_link
        self._placeholders: BoundedCache[TurnKey, asyncio.Future] = BoundedCache(_KEEP)
        self._tasks: dict[TurnKey, asyncio.Task] = {}  # running streams only: each removes itself
        self._partial: BoundedCache[TurnKey, str] = BoundedCache(_KEEP, ttl=2 * LIVE_IDLE)

    @property
    def open_count(self) -> int:
        return len(self._tasks)

    def start(self, ref: ThreadRef, turn_id: str, *, look_first: bool = False) -> None:
        """Post the placeholder and stream into it, in the background (after the event is acked)."""
        key = (ref.conversation_id, turn_id)
        if key in self._placeholders:
            return
        fut = asyncio.get_running_loop().create_future()
        self._placeholders[key] = fut
        task = asyncio.create_task(self._run(ref, turn_id, look_first, fut), name=f"slack-live-{turn_id}")
        self._tasks[key] = task
        task.add_done_callback(lambda _t, k=key: self._tasks.pop(k, None))

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
        for key in self._placeholders:
            fut = self._placeholders.get(key)
            if fut is not None:
                fut.cancel()
        self._placeholders.clear()

    async def _run(self, ref: ThreadRef, turn_id: str, look_first: bool, fut: asyncio.Future) -> None:
        open_streams.inc()
        try:
            ts = await self._post_placeholder(ref, turn_id, look_first, fut)
            if ts:
                await self._stream(ref, turn_id, ts)
        finally:
            open_streams.dec()

    async def _post_placeholder(self, ref: ThreadRef, turn_id: str, look_first: bool,
                                fut: asyncio.Future) -> str | None:
        meta_key = answer_key(turn_id, 0)
        ts: str | None = None
        try:
            if look_first:  # a Slack retry: an earlier delivery of this event may have posted it
                ts = (await self.web.find_keys(ref.channel, ref.thread_ts, oldest=turn_id)).get(meta_key)
            if ts is None:  # (a turn ending between this check and the post is left to chance)
                if await self.web.wait_post_budget(ref.channel) and await self._ended(ref, turn_id):
                    return None
                ts = await self.web.post(ref.channel, ref.thread_ts, THINKING, key=meta_key)
        except SlackCallError as exc:
            log.warning("placeholder for turn %s not posted (%s); the answer will be posted when done",
                        turn_id, exc)
        finally:
            if not fut.done():
                fut.set_result(ts)
        return ts

    async def _ended(self, ref: ThreadRef, turn_id: str) -> bool:
        """Whether the turn ended while its placeholder waited for the channel's budget. Its delivery,
        on another replica, may then have looked for the placeholder already and posted the answer
        as a message of its own: a placeholder posted now would stay beside it for good."""
        st = await self._turn(ref.conversation_id, turn_id)
        if st is None or not st.done:
            return False
        log.info("turn %s ended before its placeholder could be posted; its delivery posts the answer",
                 turn_id)
        return True

    async def _stream(self, ref: ThreadRef, turn_id: str, ts: str) -> None:
        editor = self.editor_for(ref.team)
        sink = _LiveEdits(self, ref, turn_id, ts, editor)
        follower = Follower(self.agent, ref.conversation_id, turn_id, sink, idle=LIVE_IDLE,
                            turn_state=lambda: self._turn(ref.conversation_id, turn_id))
        try:
            await follower.run()
        finally:
            editor.close(ref.channel, ts)  # also when cancelled: no live edit of this turn from now on

    async def _turn(self, conversation_id: str, turn_id: str) -> TurnStatus | None:
        handle = self.agent.client.get_workflow_handle(self.agent.workflow_id(conversation_id))
        try:
            query = handle.query("turn", turn_id, result_type=TurnStatus)
            return await asyncio.wait_for(query, QUERY_TIMEOUT)
        except (TimeoutError, RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as exc:
            log.debug("turn %s of %s not read (%s); asking again later", turn_id, conversation_id, exc)
            return None

    async def _finish(self, ref: ThreadRef, turn_id: str, ts: str, editor: EditScheduler,
                      st: TurnStatus) -> None:
        """Have the last word on the placeholder: the final first part, as the delivery writes it."""
        await asyncio.sleep(FINAL_GRACE)  # this process's own delivery, if it has the turn, cancels us
        text, only = final_first_part(st, self._partial.get((ref.conversation_id, turn_id)))
        blocks = None
        if only:  # the answer's last part: its blocks as the delivery builds them (link, feedback)
            rated = (ref.conversation_id, turn_id) if st.state == "finished" else None
            blocks = answer_blocks(text, await self._run_link(ref.conversation_id, turn_id), rated)
        try:
            await editor.send(ref.channel, ts, text, blocks=blocks, meta_key=answer_key(turn_id, 0))
        except SlackCallError as exc:
            log.info("final text of turn %s not written by its stream (%s); the delivery writes it",
                     turn_id, exc)

    async def _run_link(self, conversation_id: str, turn_id: str) -> str | None:
        workflow_id = self.agent.workflow_id(conversation_id)
        probe = Delivery(kind="turn_finished", conversation_id=conversation_id, turn_id=turn_id, meta={},
                         workflow_id=workflow_id)
        if self.run_link(probe) is None:
            return None
        try:  # the delivery links the run that ended the turn: the current one, but for a continue-as-new
            probe.run_id = (await self.agent.client.get_workflow_handle(workflow_id).describe()).run_id
        except RPCError:
            pass
        return self.run_link(probe)


class _LiveEdits:
    """The sink of one turn: its live text offered to the workspace's edit scheduler, then, once the
    turn ended, the last word on the placeholder if a live edit may have landed there."""

    def __init__(self, streams: LiveStreams, ref: ThreadRef, turn_id: str, ts: str, editor: EditScheduler) -> None:
        self.streams = streams
        self.ref = ref
        self.turn_id = turn_id
        self.ts = ts
        self.editor = editor
        self.meta_key = answer_key(turn_id, 0)

    def update(self, text: str, tools: list[str]) -> None:
        self.streams._partial[(self.ref.conversation_id, self.turn_id)] = text

    def render(self, text: str, tools: list[str], step: str | None) -> str:
        return live_text(text, tools, step)

    async def show(self, rendered: str) -> None:
        self.editor.offer(self.ref.channel, self.ts, rendered, self.meta_key)

    async def finish(self, ended: TurnStatus | None) -> None:
        wrote = self.editor.close(self.ref.channel, self.ts)
        if ended is not None and wrote:
            await self.streams._finish(self.ref, self.turn_id, self.ts, self.editor, ended)
