"""``RunHandle``: one message's run, seen from the client: its result, its events, its approvals."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from .contract import ErrorType, Update
from .errors import (
    ApprovalError,
    ConversationNotFound,
    FingerprintMismatch,
    RunAborted,
    RunCancelled,
    RunFailed,
)
from .temporal import rpc_error
from .types import AgentEvent, ApprovalInfo, Progress, ProgressQuery, TurnStatus


@dataclass(frozen=True)
class Conversation:
    """What a ``RunHandle`` needs of the agent that made it: one conversation's workflow (its latest
    run, result type ``Carry``) and the agent's calls bound to that conversation."""

    id: str
    workflow: WorkflowHandle
    address: str  # of the Temporal server, for error messages
    decide: Callable[..., Awaitable[ApprovalInfo]]  # (approval_id, approved, by, reason, *, admin)
    cancel: Callable[..., Awaitable[None]]  # (by, reason, turn_id)
    subscribe: Callable[..., AsyncIterator[AgentEvent]]  # (turn_id, after)


class RunResult:
    def __init__(self, status: TurnStatus, conversation_id: str) -> None:
        self.status = status
        self.conversation_id = conversation_id
        self.turn_id = status.turn_id
        self.text = status.text or ""
        self.tool_calls = list(status.tool_calls)
        self.approvals = list(status.approvals)
        self.files = list(status.files)  # files the turn's tools made (BlobRefs: read them from agent.blobs)

    def __repr__(self) -> str:
        return f"RunResult(turn_id={self.turn_id!r}, state={self.status.state!r}, text={self.text[:60]!r})"


class RunHandle:
    """One message's run: wait for its result, follow its events, decide its approvals, cancel it."""

    def __init__(self, conversation: Conversation, turn_id: str, status: TurnStatus | None,
                 waiting: Any = None) -> None:
        self.conversation = conversation
        self.conversation_id = conversation.id
        self.turn_id = turn_id
        self.last_status = status
        self._waiting = waiting  # a submit_and_wait update whose result is the finished turn

    @property
    def workflow_id(self) -> str:
        return self.conversation.workflow.id

    async def progress(self, seen_milestone: int = -1) -> TurnStatus:
        """The turn's status once it passes ``seen_milestone`` (an approval asked or decided, the end)."""
        handle = self.conversation.workflow
        while True:
            try:
                p: Progress = await handle.execute_update(
                    Update.WAIT_PROGRESS.value, ProgressQuery(self.turn_id, seen_milestone),
                    id=f"progress-{uuid.uuid4().hex}", result_type=Progress,
                )
            except RPCError as exc:
                closed = await self._from_closed_run(exc)
                if closed is not None:
                    return closed
                raise rpc_error(exc, self.conversation.address, self.conversation_id) from None
            except WorkflowUpdateFailedError as exc:
                raise RunFailed(f"cannot follow turn {self.turn_id!r}: {exc.cause or exc}") from None
            if p.continued:
                await asyncio.sleep(0.05)  # the next run is starting
                continue
            if p.turn is None:
                raise ConversationNotFound(
                    f"turn {self.turn_id!r} is unknown to conversation {self.conversation_id!r}"
                )
            self.last_status = p.turn
            return p.turn

    async def _from_closed_run(self, exc: RPCError) -> TurnStatus | None:
        if exc.status != RPCStatusCode.NOT_FOUND:  # the server's code for "already completed"
            return None
        try:
            carry = await self.conversation.workflow.result(follow_runs=False)
        except Exception:
            return None
        for st in carry.recent:
            if st.turn_id == self.turn_id:
                return st
        return None

    async def status(self) -> TurnStatus:
        return await self.progress(-1)

    async def _first_progress(self) -> TurnStatus | None:
        """The answer of the update that submitted the message and waits (for the end, or the first
        milestone), if this handle has one; None when there is none or it broke (long polls follow)."""
        if self._waiting is None:
            return None
        waiting, self._waiting = self._waiting, None
        try:
            p: Progress = await waiting.result()
        except (RPCError, WorkflowUpdateFailedError):
            return None
        if p.turn is not None:
            self.last_status = p.turn
        return p.turn

    async def result(self, timeout: float | None = None) -> RunResult:
        async def wait() -> TurnStatus:
            await self._first_progress()
            st = self.last_status
            seen = -1 if st is None else st.milestone
            while st is None or not st.done:
                st = await self.progress(seen)
                seen = st.milestone
            return st

        try:
            st = await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            raise RunFailed(f"turn {self.turn_id!r} did not finish within {timeout:g}s") from None
        return _result_or_raise(st, self.conversation_id)

    async def pending_approvals(self) -> list[ApprovalInfo]:
        st = await self.status()
        return [a for a in st.approvals if a.status == "pending"]

    async def _approval_id(self, approval_id: str | None) -> str:
        if approval_id:
            return approval_id
        pending = await self.pending_approvals()
        if len(pending) != 1:
            raise ApprovalError(
                f"turn {self.turn_id!r} has {len(pending)} pending approvals; pass approval_id"
            )
        return pending[0].id

    async def approve(self, approval_id: str | None = None, by: str = "user", reason: str | None = None,
                      *, admin: bool = False) -> ApprovalInfo:
        """Approve; ``admin``: ``by`` is verified as an admin (see ``Agent.decide``)."""
        return await self.conversation.decide(await self._approval_id(approval_id), True, by, reason, admin=admin)

    async def deny(self, approval_id: str | None = None, by: str = "user", reason: str | None = None,
                   *, admin: bool = False) -> ApprovalInfo:
        return await self.conversation.decide(await self._approval_id(approval_id), False, by, reason, admin=admin)

    async def cancel(self, by: str = "user", reason: str | None = None) -> None:
        await self.conversation.cancel(by, reason, self.turn_id)

    async def events(self, after: str | None = None) -> AsyncIterator[AgentEvent]:
        """Live events merged with the workflow's durable progress; ends with finished/cancelled/error."""
        queue: asyncio.Queue[AgentEvent | TurnStatus] = asyncio.Queue()
        final_round = asyncio.Event()

        async def pump_bus() -> None:
            async for ev in self.conversation.subscribe(self.turn_id, after):
                if ev.kind == "round_finished" and ev.data.get("final"):
                    final_round.set()
                await queue.put(ev)

        async def pump_progress() -> None:
            seen = -1
            first = await self._first_progress()
            if first is not None:
                await queue.put(first)
                if first.done:
                    return
                seen = first.milestone
            while True:
                st = await self.progress(seen)
                seen = st.milestone
                await queue.put(st)
                if st.done:
                    return

        tasks = [asyncio.create_task(pump_bus()), asyncio.create_task(pump_progress())]
        seen: dict[str, str] = {}
        try:
            while True:
                item = await _next(queue, tasks[1])  # raises what the progress long poll raised
                if isinstance(item, AgentEvent):
                    yield item
                    continue
                for info in item.approvals:
                    before = seen.get(info.id)
                    if before is None:
                        yield AgentEvent(kind="approval_requested", turn_id=self.turn_id, approval=info,
                                         tool=info.tool)
                    if info.status != "pending" and before != info.status:
                        yield AgentEvent(kind="approval_decided", turn_id=self.turn_id, approval=info,
                                         tool=info.tool)
                    seen[info.id] = info.status
                if item.done:
                    if item.state == "finished":
                        # Let live tokens catch up so a consumer's text is whole before "finished".
                        try:
                            await asyncio.wait_for(final_round.wait(), 0.5)
                        except asyncio.TimeoutError:
                            pass
                        while not queue.empty():
                            ev = queue.get_nowait()
                            if isinstance(ev, AgentEvent):
                                yield ev
                    yield _final_event(item)
                    return
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _next(queue: asyncio.Queue, progress_task: asyncio.Task) -> Any:
    getter = asyncio.ensure_future(queue.get())
    done, _ = await asyncio.wait({getter, progress_task}, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    if progress_task.exception() is not None:
        raise progress_task.exception()  # type: ignore[misc]
    return await queue.get()


def _final_event(st: TurnStatus) -> AgentEvent:
    if st.state == "finished":
        return AgentEvent(kind="finished", turn_id=st.turn_id, text=st.text or "")
    if st.state == "cancelled":
        return AgentEvent(kind="cancelled", turn_id=st.turn_id, data={"by": st.cancelled_by})
    return AgentEvent(kind="error", turn_id=st.turn_id, error=st.error, data={"kind": st.error_kind})


def _result_or_raise(st: TurnStatus, conversation_id: str) -> RunResult:
    if st.state == "cancelled":
        raise RunCancelled(f"the run {st.turn_id!r} was cancelled by {st.cancelled_by}")
    if st.state == "failed":
        if st.error_kind == ErrorType.FINGERPRINT:
            raise FingerprintMismatch(st.error or "configuration mismatch")
        if st.error_kind == ErrorType.ABORTED:
            raise RunAborted(f"the run {st.turn_id!r} was stopped: {st.error}")
        raise RunFailed(f"the run {st.turn_id!r} failed: {st.error}")
    return RunResult(st, conversation_id)
