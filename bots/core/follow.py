"""Following a live turn: its events in, live text out to a platform's sink, until the turn ends.

Best effort by design on every platform: what must arrive (the final text) comes from the delivery
activity. A ``Follower`` subscribes to the turn's events, builds the visible text (``TextAccumulator``
honours retried rounds), and hands each change to its ``Sink``: ``update`` at once (cheap), and a
rendering made off the event loop (a long answer's tables and splits must not delay acks or gateway
traffic) to ``show``, at most once per ``interval``; renderings of changes that came meanwhile are
coalesced into one; ``finish`` once the follow is over. A platform keeps its own placeholder and edit
scheduling in the sink.

How the follower learns the end:
- from the model's final text in the events, and
- with ``turn_state`` (a query of the workflow's turn), also when the bus has been quiet for a while
  (a cancelled or failed turn publishes nothing; an approval wait is long), and until the end is
  recorded once the final text is in. Without it, the follow ends with the final text, or when
  nothing happened for ``idle`` seconds.
``follow`` returns how the turn ended when it knows (a ``TurnStatus`` that is done), else None.

Most of the time the end is learned without a query. The workflow delivers a turn's end (finished,
failed, cancelled) with the ``durabot.deliver`` activity on the adapter's delivery task queue, and
that activity usually runs in the very process that follows the turn: it hands the end to
``turn_ends`` (this process's ``TurnEnds``) before it writes anything, and a follower with
``turn_state`` waits there first: ``LOCAL_WAIT`` after the final text, and between its queries after
that. Each query is a billable Temporal Cloud action and server work, and used to come about 1.4
times a turn on the adapter path. The status handed over is the one the delivery writes, so a sink's
last word matches the delivery's. Queries stay the fallback for what no local delivery tells: another
replica took the delivery (no local end within ``LOCAL_WAIT``), and a quiet bus (a long approval
wait, a cancelled or failed turn whose delivery went elsewhere). The price, when another replica
delivers: the stream here learns the end ``LOCAL_WAIT`` later than a query would tell it.
How long "moments" are depends on the load: under a burst of turns the end's workflow task and the
delivery's dispatch wait their turn on the server and the worker, and a fixed wait would fall back to
queries exactly when they cost most. So ``turn_ends`` keeps how long this process's recent deliveries
came after their follow saw the final text, and a follow waits twice the longest of them (at least
``LOCAL_WAIT``, at most ``MAX_LOCAL_WAIT``) after the final text, and as long before its first query
of a quiet bus (at least ``FIRST_CHECK``); a local delivery of the end stops either wait at once. A
turn delivered by another replica then ends here at most that much later; on a quiet system nothing
changes.
A local end is the same event as a query that finds the turn done before this process's delivery
starts writing, an order that already happens, so every guarantee holds as before: the final text
still comes from the delivery, nothing is lost or posted twice. A turn-end event on the bus was the
other way: no activity that already runs publishes one once the end is recorded (a cancel or a
failure publishes nothing), so it would take a new activity.

A sink that shows each tool call on its own (a task card) also has ``tool_step(ToolStep)``: called at
once for every start and end of a tool call of the turn's own agent. A sink with ``final_text()`` is
told when the model's final text is in (after its ``update``), before it is shown: one whose end is
written by the delivery anyway may leave the rest to it. A sink whose ``render`` does no
work sets ``render_inline = True``: it is then called on the event loop, without a thread hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from agent_core import Agent
from agent_core.events import AgentEvent, TextAccumulator
from agent_core.types import TurnStatus

log = logging.getLogger(__name__)

R = TypeVar("R")

FIRST_CHECK = 1.0  # the bus quiet this long: ask the workflow whether the turn ended
MAX_CHECK = 30.0  # ... and then less and less often, down to once in this many seconds
END_CHECKS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)  # after the model's final text, until the turn ends
LOCAL_WAIT = 0.5  # after the final text: how long this process's own delivery of the end is awaited first
# ... however slow recent deliveries were. Kept short of the patience of a Slack delivery on another
# replica with a stream of this process (bots/slack/delivery.py OWNER_CHECKS, 4.5 s): this stream's
# last word (after FINAL_GRACE, 1 s) still comes before that delivery completes the stream itself.
MAX_LOCAL_WAIT = 2.5
RECENT_LAGS = 32  # deliveries whose lag after the final text sets that wait

TurnState = Callable[[], Awaitable["TurnStatus | None"]]
TurnKey = tuple[str, str]  # (conversation id, turn id)


class TurnEnds:
    """Ends of turns as this process's delivery activity delivers them, to the follows of this process
    waiting for them. Only a turn being followed here is kept, and only while it is followed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._waiting: dict[TurnKey, list[asyncio.Future[TurnStatus]]] = {}
        self._clock = clock
        self._final_at: dict[TurnKey, float] = {}  # when a follow here saw the turn's final text
        self._lags: deque[float] = deque(maxlen=RECENT_LAGS)  # final text -> local delivery, recent turns

    def final_seen(self, conversation_id: str, turn_id: str) -> None:
        """A follow of the turn has its final text: the delivery of its end is due now."""
        key = (conversation_id, turn_id)
        if key in self._waiting:
            self._final_at.setdefault(key, self._clock())

    def local_wait(self) -> float:
        """How long a follow waits for this process's delivery of an end before it asks the workflow:
        twice the longest recent lag between a final text and its local delivery, within
        [``LOCAL_WAIT``, ``MAX_LOCAL_WAIT``]."""
        lags = list(self._lags)  # (a delivery on another thread may append meanwhile)
        return min(MAX_LOCAL_WAIT, max(LOCAL_WAIT, 2 * max(lags, default=0.0)))

    def watch(self, conversation_id: str, turn_id: str) -> asyncio.Future[TurnStatus]:
        """A future that the turn's end resolves if it is delivered here; ``unwatch`` it when done."""
        fut: asyncio.Future[TurnStatus] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault((conversation_id, turn_id), []).append(fut)
        return fut

    def unwatch(self, conversation_id: str, turn_id: str, fut: asyncio.Future[TurnStatus]) -> None:
        key = (conversation_id, turn_id)
        futs = self._waiting.get(key, [])
        if fut in futs:
            futs.remove(fut)
        if not futs:
            self._waiting.pop(key, None)
            self._final_at.pop(key, None)

    def ended(self, conversation_id: str, turn_id: str, st: TurnStatus) -> None:
        """The turn ended as ``st`` (a delivery of its end runs here): its follows stop waiting."""
        at = self._final_at.pop((conversation_id, turn_id), None)
        if at is not None:
            self._lags.append(max(0.0, self._clock() - at))
        for fut in self._waiting.get((conversation_id, turn_id), []):
            if not fut.done():  # (thread-safe: a delivery worker need not share the follow's event loop)
                fut.get_loop().call_soon_threadsafe(_resolve, fut, st)

    def __len__(self) -> int:
        return len(self._waiting)


def _resolve(fut: asyncio.Future[TurnStatus], st: TurnStatus) -> None:
    if not fut.done():
        fut.set_result(st)


turn_ends = TurnEnds()  # this process's: its delivery activity and its follows meet here


@dataclass(frozen=True)
class ToolStep:
    call_id: str
    tool: str
    status: str  # in_progress | complete | error
    output: str | None = None  # a short preview of what the tool returned, when it is done


class Sink(Protocol[R]):
    def update(self, text: str, tools: list[str]) -> None:
        """The turn's visible text and tools so far, at every change (keep it cheap)."""

    def render(self, text: str, tools: list[str], step: str | None) -> R:
        """What to show for this text (CPU work: runs in a thread). ``step``: a tool just started."""

    async def show(self, rendered: R) -> None:
        """Show it (best effort: a failure is the sink's to log)."""

    async def finish(self, ended: TurnStatus | None) -> None:
        """The follow is over (not called when it is cancelled); ``ended``: how the turn ended, if known."""


class Follower(Generic[R]):
    def __init__(self, agent: Agent, conversation_id: str, turn_id: str, sink: Sink[R], *,
                 interval: float = 0.0, idle: float = 1800.0, turn_state: TurnState | None = None) -> None:
        self.agent = agent
        self.conversation_id = conversation_id
        self.turn_id = turn_id
        self.sink = sink
        self.interval = interval
        self.idle = idle
        self.turn_state = turn_state
        self._acc = TextAccumulator()
        self._step: str | None = None
        self._dirty = asyncio.Event()
        self._fed = False  # the events are all in: the flusher shows what is left and stops
        self._local: asyncio.Future[TurnStatus] | None = None  # the end, if this process delivers it

    async def run(self) -> None:
        """Follow the turn, then let the sink finish."""
        ended: TurnStatus | None = None
        try:
            ended = await self.follow()
        except asyncio.CancelledError:
            raise
        except Exception:  # the bus is best effort: the delivery still writes the answer
            log.exception("live text of turn %s stopped", self.turn_id)
        await self.sink.finish(ended)

    async def follow(self) -> TurnStatus | None:
        """Show the turn's live text until the turn ends; returns how it ended (None: unknown)."""
        if self.turn_state is not None:
            self._local = turn_ends.watch(self.conversation_id, self.turn_id)
        try:
            flusher = asyncio.create_task(self._flush())
            try:
                ended = await self._events()
                self._fed = True
                self._dirty.set()
                await flusher
            finally:
                flusher.cancel()
            if ended is None and self._acc.final and self.turn_state is not None:
                ended = await self._end()
            return ended
        finally:
            if self._local is not None:
                turn_ends.unwatch(self.conversation_id, self.turn_id, self._local)

    async def _events(self) -> TurnStatus | None:
        # Without a query: one subscription. With: the first query waits as long as a delivery may take.
        first = max(FIRST_CHECK, turn_ends.local_wait()) if self.turn_state is not None else self.idle
        check = first
        self._offset: str | None = None
        self._heard = 0  # events read so far
        self._quiet_since = time.monotonic()
        while not self._acc.final:
            heard = self._heard
            if self._local is None:
                await self._read(check)
            else:
                # A local delivery of the end ends the wait at once (a failed or cancelled turn publishes
                # nothing, and a delivery here may be waiting for this follow to choose how it streams).
                read = asyncio.ensure_future(self._read(check))
                try:
                    await asyncio.wait((read, self._local), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not read.done():
                        read.cancel()
                        await asyncio.gather(read, return_exceptions=True)
                if not read.cancelled():
                    read.result()  # (its exception, if any)
                elif self._local.done():
                    return self._local.result()
            if self._acc.final or self.turn_state is None:
                break
            st = self._local_end() or await self.turn_state()
            if st is not None and st.done:
                return st
            if time.monotonic() - self._quiet_since >= self.idle:
                return None
            check = min((first if self._heard != heard else check) * 2, MAX_CHECK)  # quieter: ask less often
        return None

    async def _read(self, check: float) -> None:
        """Feed the turn's events until its final text, or until the bus is quiet for ``check`` seconds."""
        events = self.agent.subscribe(self.conversation_id, self.turn_id, after=self._offset, idle_timeout=check)
        async with contextlib.aclosing(events):
            async for ev in events:
                self._offset = ev.offset or self._offset
                self._quiet_since = time.monotonic()
                self._heard += 1
                self._feed(ev)
                if self._acc.final:
                    if self.turn_state is not None:
                        turn_ends.final_seen(self.conversation_id, self.turn_id)
                    if (hook := getattr(self.sink, "final_text", None)) is not None:
                        hook()
                    return

    def _feed(self, ev: AgentEvent) -> None:
        changed = self._acc.feed(ev)
        self._tool_step(ev)
        if ev.kind == "tool_started":
            self._step, changed = (f"running {ev.tool}" if ev.tool else None), True
        elif changed:
            self._step = None
        if changed:
            self.sink.update(self._acc.text, list(self._acc.tools))
            self._dirty.set()

    def _tool_step(self, ev: AgentEvent) -> None:
        hook = getattr(self.sink, "tool_step", None)
        if hook is None or ev.source or not ev.call_id or ev.kind not in ("tool_started", "tool_finished"):
            return
        if ev.kind == "tool_started":
            hook(ToolStep(ev.call_id, ev.tool or "", "in_progress"))
        else:
            ok = bool(ev.data.get("ok", True))
            preview = ev.data.get("preview")
            hook(ToolStep(ev.call_id, ev.tool or "", "complete" if ok else "error",
                          preview if isinstance(preview, str) else None))

    async def _end(self) -> TurnStatus | None:
        """The final text is in: the workflow records the end within moments, and delivers it, most
        often here. Asked only when that delivery does not come."""
        assert self.turn_state is not None
        if st := await self._wait_local(turn_ends.local_wait()):
            return st
        for delay in END_CHECKS:
            st = await self.turn_state()
            if st is not None and st.done:
                return st
            if st := await self._wait_local(delay):
                return st
        st = await self.turn_state()
        return st if st is not None and st.done else None

    def _local_end(self) -> TurnStatus | None:
        fut = self._local
        return fut.result() if fut is not None and fut.done() else None

    async def _wait_local(self, timeout: float) -> TurnStatus | None:
        """The end as this process's delivery hands it over, within ``timeout`` (None: not here)."""
        if self._local is None:
            await asyncio.sleep(timeout)
            return None
        done, _ = await asyncio.wait((self._local,), timeout=timeout)
        return self._local.result() if done else None

    async def _flush(self) -> None:
        last = float("-inf")
        while True:
            await self._dirty.wait()
            delay = last + self.interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # coalesce the changes of this interval into one showing
            self._dirty.clear()
            text, tools, step = self._acc.text, list(self._acc.tools), self._step
            if getattr(self.sink, "render_inline", False):  # nothing to render: no thread hop
                rendered = self.sink.render(text, tools, step)
            else:
                rendered = await asyncio.to_thread(self.sink.render, text, tools, step)
            await self.sink.show(rendered)
            last = time.monotonic()
            if self._fed and not self._dirty.is_set():
                return
