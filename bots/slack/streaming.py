"""Live replies: a placeholder in the thread, then the answer streaming into it as coalesced edits.

The turn is followed by ``bots.core.follow``; this module is its Slack sink: the placeholder, the
workspace's edit scheduler, and the last word on the placeholder when another replica delivers.

Best effort by design: what must arrive (the final text) comes from the delivery activity, which
completes the same placeholder. Each turn's placeholder ts is kept here so the delivery can find it
without a lookup; after a restart the delivery finds it by its metadata key instead.

With several adapter replicas, the delivery may run on another replica than the one streaming (all of
them poll the same delivery task queue), so a stream does not wait to be stopped by a delivery: it
watches its turn and ends with it.

- It learns the end from this process's delivery of it when that comes (see bots/core/follow.py),
  else from the workflow's ``turn`` query, which the follower asks when the bus brought the model's
  final text and no local delivery followed within moments, and whenever the bus has been quiet for
  a while. A query adds nothing to the workflow's history and holds none of its ten update slots,
  where a progress long poll per streamed turn would do both.
- It then closes its edit state at once: no live edit of this process is sent, or retried after a
  429, from then on.
- If an edit of this process may have reached the message, and this process's own delivery does not
  take over within ``FINAL_GRACE``, it writes the final first part itself, rendered exactly as the
  delivery renders it. Whatever order its writes and the other replica's land in, the last one to
  land shows the final text.
- A placeholder that had to wait for the channel's post budget is not posted if its turn ended
  meanwhile: the delivery elsewhere may already have looked for it, found nothing and posted the
  answer on its own.

With native streaming (the default; ``DURABOT_SLACK_STREAMING=edits`` turns it off) there is no
placeholder: the turn's first text or tool call starts a streamed reply (bots/slack/native.py) if the
workspace's Tier 2 budget has a start free at that moment. If it has not, or the workspace refuses
streaming, that turn streams by placeholder and edits as above, at once: it never waits for a start.
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
from bots.core.follow import Follower, ToolStep

from .edits import EditScheduler
from .ids import ThreadRef
from .limits import StreamBudget
from .native import NativeStream, OnStart, Refused, StreamLimits
from .render import (
    THINKING,
    answer_blocks,
    answer_key,
    cancelled_text,
    end_blocks,
    ended_parts,
    failed_text,
    live_text,
    run_link_block,
    with_run_link,
)
from .stream_records import StreamRecords
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
                 run_link: Callable[[Delivery], str | None] = _no_link, *,
                 budget_for: Callable[[str], StreamBudget] | None = None,
                 limits: StreamLimits | None = None, records: StreamRecords | None = None) -> None:
        """``budget_for``: each workspace's native-streaming budget; None streams by edits only.
        ``records``: where each streamed message is recorded when it starts (None: nowhere; after a
        restart such a message is then known only by what the thread shows of it)."""
        self.records = records
        self.agent = agent
        self.web = web
        self.editor_for = editor_for
        self.run_link = run_link
        self.budget_for = budget_for
        self.limits = limits or StreamLimits()
        self._native: BoundedCache[TurnKey, asyncio.Future] = BoundedCache(_KEEP)  # -> NativeStream | None
        self._placeholders: BoundedCache[TurnKey, asyncio.Future] = BoundedCache(_KEEP)
        self._tasks: dict[TurnKey, asyncio.Task] = {}  # running streams only: each removes itself
        self._partial: BoundedCache[TurnKey, str] = BoundedCache(_KEEP, ttl=2 * LIVE_IDLE)

    @property
    def open_count(self) -> int:
        return len(self._tasks)

    def start(self, ref: ThreadRef, turn_id: str, *, look_first: bool = False, user: str = "") -> None:
        """Stream the turn's answer into the thread, in the background (after the event is acked):
        natively when the workspace can, else into a placeholder. ``user``: who asked (a stream's
        recipient)."""
        key = (ref.conversation_id, turn_id)
        if key in self._placeholders:
            return
        fut = asyncio.get_running_loop().create_future()
        self._placeholders[key] = fut
        native = self.budget_for is not None and bool(user)
        if native and look_first:
            # A Slack retry: an earlier process may have left a stream of this turn open, which the
            # delivery completes; a placeholder or a second stream now would stand beside it.
            fut.set_result(None)
            return
        if native:
            self._native[key] = asyncio.get_running_loop().create_future()
        run = self._run_native(ref, turn_id, user, fut) if native else self._run(ref, turn_id, look_first, fut)
        task = asyncio.create_task(run, name=f"slack-live-{turn_id}")
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

    async def native(self, conversation_id: str, turn_id: str, wait: float = 10.0) -> NativeStream | None:
        """The turn's native stream if this process streams it (waits for the choice between a stream
        and a placeholder, which the turn's first text makes); None otherwise."""
        fut = self._native.get((conversation_id, turn_id))
        if fut is None:
            return None
        try:
            stream = await asyncio.wait_for(asyncio.shield(fut), wait)
        except (TimeoutError, asyncio.CancelledError):
            return None
        return stream if isinstance(stream, NativeStream) and stream.started else None

    def native_ts(self, but: TurnKey | None = None) -> set[str]:
        """The ts of every message this process streams now, but those of turn ``but``: another turn's
        live stream is not to be taken for this one's by a delivery."""
        out: set[str] = set()
        for key in self._native:
            if key == but:
                continue
            fut = self._native.get(key)
            if fut is not None and fut.done() and not fut.cancelled() and isinstance(fut.result(), NativeStream):
                stream = fut.result()
                if not stream.finished:
                    out.update(seg.ts for seg in stream.segments)
        return out

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
        for cache in (self._placeholders, self._native):
            for key in cache:
                fut = cache.get(key)
                if fut is not None:
                    fut.cancel()
            cache.clear()

    async def _run(self, ref: ThreadRef, turn_id: str, look_first: bool, fut: asyncio.Future) -> None:
        open_streams.inc()
        try:
            ts = await self._post_placeholder(ref, turn_id, look_first, fut)
            if ts:
                await self._stream(ref, turn_id, ts)
        finally:
            open_streams.dec()

    async def _run_native(self, ref: ThreadRef, turn_id: str, user: str, fut: asyncio.Future) -> None:
        open_streams.inc()
        sink = _NativeLive(self, ref, turn_id, user, fut, self._native.get((ref.conversation_id, turn_id)))
        follower = Follower(self.agent, ref.conversation_id, turn_id, sink, idle=LIVE_IDLE,
                            turn_state=lambda: self._turn(ref.conversation_id, turn_id))
        try:
            await follower.run()
        finally:
            open_streams.dec()
            sink.close()

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


class _NativeLive:
    """The sink of one turn in native mode: the turn's first text (or tool call) chooses between a
    streamed reply and a placeholder with edits, and the rest follows the choice."""

    render_inline = True  # a stream takes the text as it is; edits render it in a thread when chosen

    def __init__(self, streams: LiveStreams, ref: ThreadRef, turn_id: str, user: str, placeholder: asyncio.Future,
                 chosen: asyncio.Future | None) -> None:
        self.streams, self.ref, self.turn_id, self.user = streams, ref, turn_id, user
        self.placeholder = placeholder  # the placeholder's ts (None when streaming natively)
        self.chosen = chosen  # the NativeStream, or None for edits
        self.stream: NativeStream | None = None
        self.edits: _LiveEdits | None = None
        self.decided = False
        self._final = False
        self._steps: list[ToolStep] = []

    def update(self, text: str, tools: list[str]) -> None:
        self.streams._partial[(self.ref.conversation_id, self.turn_id)] = text
        if self.stream is not None:
            self.stream.offer(text)

    def tool_step(self, step: ToolStep) -> None:
        if self.stream is not None:
            self.stream.tool(step.call_id, step.tool, step.status, step.output)
        elif not self.decided:
            self._steps.append(step)

    def final_text(self) -> None:
        """The model's final text is in: the stream's stop carries what is not appended yet."""
        self._final = True
        if self.stream is not None:
            self.stream.hold()

    def render(self, text: str, tools: list[str], step: str | None) -> tuple[str, list[str], str | None]:
        return text, tools, step  # a stream takes the text as it is; edits render it when chosen

    async def show(self, rendered: tuple[str, list[str], str | None]) -> None:
        text, tools, step = rendered
        if not self.decided:
            await self._choose(text)
        if self.stream is not None:
            self.stream.offer(text)
        elif self.edits is not None:
            rendered_text = await asyncio.to_thread(live_text, text, tools, step)
            self.edits.editor.offer(self.ref.channel, self.edits.ts, rendered_text, self.edits.meta_key)

    async def _choose(self, text: str) -> None:
        self.decided = True
        budget = self.streams.budget_for(self.ref.team) if self.streams.budget_for else None
        if budget is not None and budget.admit():
            stream = NativeStream(self.streams.web, self.streams.editor_for(self.ref.team), budget, self.ref,
                                  self.turn_id, self.user, self.streams.limits, self._recorder())
            stream.text = text
            for s in self._steps:
                stream.tool(s.call_id, s.tool, s.status, s.output)
            try:
                await stream.begin()
            except Refused as exc:
                budget.refused = exc.error
                log.warning("workspace %s refused native streaming (%s); its answers stream by edits from now on",
                            self.ref.team, exc.error)
            except SlackCallError as exc:
                log.info("stream of turn %s not started (%s); it streams by edits", self.turn_id, exc)
            else:
                self.stream = stream
                if self._final:  # it came while the stream started (before its live loop runs)
                    stream.hold()
                self._resolve(stream)
                return
        elif budget is not None and not budget.refused:
            log.info("no stream start free in workspace %s now; turn %s streams by edits", self.ref.team, self.turn_id)
        self._resolve(None)
        ts = await self.streams._post_placeholder(self.ref, self.turn_id, False, self.placeholder)
        if ts:
            self.edits = _LiveEdits(self.streams, self.ref, self.turn_id, ts, self.streams.editor_for(self.ref.team))

    def _recorder(self) -> OnStart | None:
        records = self.streams.records
        if records is None:
            return None
        ref, turn_id = self.ref, self.turn_id

        async def started(segment: int, ts: str) -> None:
            await records.started(ref.conversation_id, turn_id, segment, ref.channel, ts)

        return started

    def _resolve(self, stream: NativeStream | None) -> None:
        if self.chosen is not None and not self.chosen.done():
            self.chosen.set_result(stream)
        if stream is not None and not self.placeholder.done():
            self.placeholder.set_result(None)

    async def finish(self, ended: TurnStatus | None) -> None:
        if self.edits is not None:
            await self.edits.finish(ended)
            return
        if self.stream is None or ended is None or not ended.done:
            return
        await asyncio.sleep(FINAL_GRACE)  # this process's own delivery, if it has the turn, cancels us
        if self.stream.finished:
            return
        link = await self.streams._run_link(self.ref.conversation_id, self.turn_id)
        rated = (self.ref.conversation_id, self.turn_id) if ended.state == "finished" else None
        try:
            # Shielded: this process's delivery may cancel the follow now, and then waits for this end.
            await asyncio.shield(self.stream.finish(ended.state, ended.text,
                                                    notice(ended.state, ended.error, ended.cancelled_by),
                                                    end_blocks(link, rated)))
        except SlackCallError as exc:
            log.info("stream of turn %s not finished by itself (%s); the delivery finishes it", self.turn_id, exc)

    def close(self) -> None:
        """The follow is over (or cancelled): a choice not made now is edits, or nothing at all."""
        self._resolve(None)
        if not self.placeholder.done():
            self.placeholder.set_result(None)
        if self.stream is not None:
            self.stream.cancel_live()
        if self.edits is not None:
            self.edits.editor.close(self.ref.channel, self.edits.ts)


def notice(outcome: str, error: str | None, by: str | None) -> str | None:
    """What a streamed answer ends with when its turn did not finish."""
    if outcome == "failed":
        return failed_text(error)
    if outcome == "cancelled":
        return cancelled_text(None, by)
    return None
