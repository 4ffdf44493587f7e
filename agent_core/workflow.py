"""The conversation workflow: one per conversation, deterministic, holding only small state.

It queues messages, runs turns (LLM round -> tool calls behind the approval gate, in parallel ->
repeat), waits for the next message, ends after an idle timeout and continues-as-new before its
history grows large. The transcript reaches activities by reference (``TranscriptRef``). Durable
notices for chat platforms go out through a delivery activity on the adapter's task queue.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta, timezone

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from . import limits
    from .delegation import Delegation
    from .contract import (
        DELIVER_ACTIVITY, LLM_ACTIVITY, RESTORE_ACTIVITY, TOOL_ACTIVITY, WORKFLOW,
        DeliveryKind, ErrorType, Query, Signal, Update,
    )
    from .approvals import APPROVAL_IDS_PATCH, approval_id, may_decide, who_may
    from .fingerprint import describe_mismatch
    from .types import (
        ApprovalInfo,
        CancelRequest,
        Carry,
        ChatMessage,
        ParentLink,
        ConversationInput,
        ConversationStatus,
        Decision,
        Delivery,
        LLMRequest,
        LLMResult,
        Progress,
        ProgressQuery,
        ToolCall,
        ToolRequest,
        ToolResult,
        TranscriptRef,
        TurnCheckpoint,
        TurnStatus,
        UserMessage,
    )


IDLE_TIMER_PATCH = "idle-timer-per-period"
# Runs without the patch marker that started before this used a timer per wait (development builds only).
_UNMARKED_PER_PERIOD_SINCE = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)

_SEEN_IDS = 500  # message ids remembered for deduplication
_RECENT = 10  # finished turns carried across continue-as-new
_WINDOW_SLACK = 20


class _Checkpoint(Exception):
    """Raised inside a turn when only approval waits remain and the run should continue as new."""


@workflow.defn(name=WORKFLOW)
class ConversationWorkflow(Delegation):
    @workflow.init
    def __init__(self, inp: ConversationInput) -> None:
        self.conv = inp.conversation_id
        self.spec = inp.spec
        self._apply_carry(inp.carry or Carry())
        self.queue: list[UserMessage] = []
        self.statuses: dict[str, TurnStatus] = {s.turn_id: s for s in self.carry_in.recent}
        for msg in inp.pending:
            self._enqueue(msg)
        self.current: TurnStatus | None = None
        self.current_msg: UserMessage | None = None
        self.current_task: asyncio.Task | None = None
        self.approvals: dict[str, ApprovalInfo] = {}
        self.outbox: list[tuple[str, Delivery]] = []
        self.delivering = False
        self.continuing = False
        self.started_at = workflow.now().isoformat()
        self.turn_started = workflow.now().timestamp()
        self.turn_spoke = False
        # Pausing a turn for continue-as-new (see _Checkpoint).
        self.resume = inp.resume
        self.pending_cancel: CancelRequest | None = inp.cancel
        self.checkpoint_wanted = False
        self.running_tools = 0
        self.phase_results: dict[str, ToolResult] = {}
        self.phase: tuple[int, list[ToolCall]] | None = None
        self.checkpoint: TurnCheckpoint | None = None
        # Sub-agents: this run's parent (if it is one) and approvals raised by its own children.
        self.parent: ParentLink | None = inp.parent
        self.child_proxies: dict[tuple[str, str], ApprovalInfo] = {}  # (child workflow, its id) -> ours
        self.proxy_targets: dict[str, tuple[str, str]] = {}  # our approval id -> (child workflow, its id)
        if inp.resume is not None:
            st = inp.resume.status
            self.statuses[st.turn_id] = st
            for info in st.approvals:
                if info.status == "pending":
                    self.approvals[info.id] = info  # decisions are accepted from the first task on

    def _apply_carry(self, carry: Carry) -> None:
        self.carry_in = carry
        self.window: list[ChatMessage] = list(carry.window)
        self.window_sizes = [limits.message_bytes(m) for m in self.window]
        self.window_bytes = sum(self.window_sizes)
        self._bound_window()
        self.next_seq = carry.next_seq
        self.synced_seq = carry.next_seq  # assume the store has them; a miss triggers one resync
        self.turns = carry.turns
        self.approval_count = carry.approvals
        self.seen_ids: list[str] = list(carry.seen_message_ids)
        self.seen_set = set(self.seen_ids)

    # ---------------------------------------------------------------- main loop
    @workflow.run
    async def run(self, inp: ConversationInput) -> Carry:
        if inp.carry is None and not inp.restored:
            try:
                previous = await workflow.execute_local_activity(
                    RESTORE_ACTIVITY, args=[self.conv, inp.previous_run_id], result_type=Carry,
                    start_to_close_timeout=timedelta(seconds=10),
                    retry_policy=RetryPolicy(maximum_attempts=3),
                )
            except ActivityError as err:
                workflow.logger.warning("could not restore the previous run's context: %s", err.cause or err)
                previous = None
            if previous is not None and previous.next_seq > self.next_seq:
                seen, self.seen_ids = self.seen_ids, []
                self._apply_carry(previous)
                for mid in seen:
                    self._remember(mid)
        if self.resume is not None:
            await self._run_turn(self.resume.message, self.resume)
            await self._continue_as_new_if_needed()
        if not self._idle_timer_per_period():
            return await self._loop_with_a_timer_per_wait()
        self.last_active = workflow.now()
        self.idle = False
        watch = asyncio.create_task(self._idle_watch())
        while True:
            if self.parent is not None and self.turns and not self.queue:
                return self._carry()  # a sub-agent's task is one turn; its answer is in carry.recent
            await workflow.wait_condition(lambda: bool(self.queue) or self.idle)
            if not self.queue:
                await workflow.wait_condition(
                    lambda: not self.outbox and not self.delivering and workflow.all_handlers_finished()
                )
                if not self.queue:
                    return self._carry()
                self.idle = False
                watch = asyncio.create_task(self._idle_watch())
            msg = self.queue.pop(0)
            await self._run_turn(msg)
            self.last_active = workflow.now()
            await self._continue_as_new_if_needed()
        watch.cancel()

    def _idle_timer_per_period(self) -> bool:
        """Which idle timer this run uses: a change of commands, so it must match the run's history.

        Runs that record the patch marker use one timer per idle period. Runs without it started either
        on the first released code, which already used one timer per idle period (it had no marker), or
        on earlier development builds, which started a timer on every wait for a message; the time the
        run started tells them apart.
        """
        if workflow.patched(IDLE_TIMER_PATCH):
            return True
        return workflow.info().start_time >= _UNMARKED_PER_PERIOD_SINCE

    async def _loop_with_a_timer_per_wait(self) -> Carry:
        """The message loop of runs that started before the one-timer-per-idle-period change."""
        while True:
            if self.parent is not None and self.turns and not self.queue:
                return self._carry()
            try:
                await workflow.wait_condition(lambda: bool(self.queue), timeout=self.spec.timeouts.idle)
            except asyncio.TimeoutError:
                if not self.queue:
                    await workflow.wait_condition(
                        lambda: not self.outbox and not self.delivering and workflow.all_handlers_finished()
                    )
                    if not self.queue:
                        return self._carry()
            msg = self.queue.pop(0)
            await self._run_turn(msg)
            await self._continue_as_new_if_needed()

    async def _idle_watch(self) -> None:
        """One timer per idle period, not one per turn: it re-arms only after it fires."""
        idle = self.spec.timeouts.idle
        while True:
            busy = self.current is not None or bool(self.queue)
            remaining = idle if busy else idle - (workflow.now() - self.last_active).total_seconds()
            if remaining <= 0:
                self.idle = True
                return
            await workflow.sleep(remaining)

    async def _continue_as_new_if_needed(self) -> None:
        if self.checkpoint is not None:
            await self._continue_as_new()
        elif self._history_is_large() and not self._pending_too_large():
            await self._continue_as_new()

    def _pending_too_large(self) -> bool:
        # Queued messages ride in the next run's input; past the budget, the queue drains first.
        if sum(limits.payload_size(m) for m in self.queue) <= limits.PENDING_BYTES:
            return False
        return workflow.patched("bounded-pending")

    def _history_is_large(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self.spec.max_history_events
            or info.get_current_history_size() >= self.spec.max_history_bytes
        )

    async def _continue_as_new(self) -> None:
        self.continuing = True  # long polls return "continued" and ask the next run
        await workflow.wait_condition(
            lambda: not self.outbox and not self.delivering and workflow.all_handlers_finished()
        )
        workflow.continue_as_new(
            ConversationInput(
                conversation_id=self.conv, spec=self.spec, carry=self._carry(),
                pending=list(self.queue), restored=True, resume=self.checkpoint,
                cancel=self.pending_cancel if self.checkpoint is not None else None,
            )
        )

    def _carry(self) -> Carry:
        finished = limits.bound_statuses([s for s in self.statuses.values() if s.done][-_RECENT:])
        return Carry(
            window=list(self.window), next_seq=self.next_seq, turns=self.turns,
            approvals=self.approval_count, seen_message_ids=list(self.seen_ids), recent=finished,
        )

    # ---------------------------------------------------------------- messages in
    @workflow.update(name=Update.SUBMIT.value)
    def submit(self, msg: UserMessage) -> TurnStatus:
        if msg.id in self.seen_set:
            known = self.statuses.get(msg.id)
            if known is None:
                return TurnStatus(turn_id=msg.id, state="finished", duplicate=True, step="forgotten")
            return dataclasses.replace(known, duplicate=True)
        return self._enqueue(msg)

    @workflow.update(name=Update.SUBMIT_AND_WAIT.value)
    async def submit_and_wait(self, msg: UserMessage) -> Progress:
        """Submit, then answer when the turn ends: one update for a caller that only wants the result."""
        accepted = self.submit(msg)
        st = self.statuses.get(msg.id)
        if st is None:
            return Progress(turn=accepted)
        await workflow.wait_condition(lambda: st.done or self.continuing)
        return Progress(turn=st, continued=not st.done)

    @submit.validator
    def _validate_submit(self, msg: UserMessage) -> None:
        problem = _refusal(msg)
        if problem:
            raise ApplicationError(problem, type=ErrorType.MESSAGE_REJECTED.value)

    @submit_and_wait.validator
    def _validate_submit_and_wait(self, msg: UserMessage) -> None:
        self._validate_submit(msg)

    @workflow.signal(name=Signal.SUBMIT.value)
    def submit_signal(self, msg: UserMessage) -> None:
        problem = _refusal(msg)
        if problem:
            workflow.logger.warning("message dropped: %s", problem)  # a signal cannot be answered
        elif msg.id not in self.seen_set:
            self._enqueue(msg)

    def _enqueue(self, msg: UserMessage) -> TurnStatus:
        limits.bound_user_message(msg)  # a client of another version may not have cut it
        self._remember(msg.id)
        status = TurnStatus(turn_id=msg.id, state="queued", step="queued",
                            meta=dict(msg.deliver_to.meta) if msg.deliver_to else {})
        self.statuses[msg.id] = status
        self.queue.append(msg)
        self._trim_statuses()
        return status

    def _remember(self, message_id: str) -> None:
        self.seen_ids.append(message_id)
        self.seen_set.add(message_id)
        if len(self.seen_ids) > _SEEN_IDS:
            self.seen_set.discard(self.seen_ids.pop(0))

    def _trim_statuses(self) -> None:
        done = [k for k, s in self.statuses.items() if s.done]
        for key in done[: max(0, len(done) - 2 * _RECENT)]:
            del self.statuses[key]

    # ---------------------------------------------------------------- progress, decisions, cancel
    @workflow.update(name=Update.WAIT_PROGRESS.value)
    async def wait_progress(self, q: ProgressQuery) -> Progress:
        def changed() -> bool:
            st = self.statuses.get(q.turn_id)
            return self.continuing or st is None or st.milestone > q.seen_milestone

        await workflow.wait_condition(changed)
        st = self.statuses.get(q.turn_id)
        if st is not None and st.milestone > q.seen_milestone:
            return Progress(turn=st)
        return Progress(turn=st, continued=self.continuing)

    @workflow.update(name=Update.DECIDE.value)
    async def decide(self, d: Decision) -> ApprovalInfo:
        info = self.approvals[d.approval_id]
        await self._apply_decision(info, d)
        return info

    @decide.validator
    def _validate_decision(self, d: Decision) -> None:
        if self.continuing:
            raise ApplicationError("the conversation is moving to a new run; try again", type=ErrorType.CONTINUING.value)
        info = self.approvals.get(d.approval_id)
        if info is None:
            raise ApplicationError(f"no approval {d.approval_id!r} in this conversation", type=ErrorType.APPROVAL_UNKNOWN.value)
        if info.status != "pending":
            who = f" by {info.decided_by}" if info.decided_by else ""
            raise ApplicationError(
                f"approval {d.approval_id!r} is already {info.status}{who}", type=ErrorType.APPROVAL_ALREADY_DECIDED.value
            )
        if not may_decide(info, d.by, d.admin):
            # The policy was recorded when the approval was asked: what a button or caller claims
            # about the requester or the approvers plays no part.
            raise ApplicationError(
                f"{d.by!r} may not decide approval {d.approval_id!r}: only {who_may(info)} can",
                info.requested_by, type=ErrorType.APPROVAL_NOT_ALLOWED.value,
            )

    @workflow.query(name=Query.APPROVAL.value)
    def approval(self, approval_id: str) -> ApprovalInfo | None:
        """One approval of this run, with its whole arguments (cards show them shortened)."""
        return self.approvals.get(approval_id)

    @workflow.signal(name=Signal.CANCEL.value)
    def cancel(self, req: CancelRequest) -> None:
        if self.continuing and self.checkpoint is not None:
            self.pending_cancel = req  # the paused turn is cancelled as soon as the next run resumes it
            return
        if req.turn_id and req.turn_id != (self.current.turn_id if self.current else None):
            for i, msg in enumerate(self.queue):
                if msg.id == req.turn_id:
                    self.queue.pop(i)
                    st = self.statuses[msg.id]
                    st.state, st.cancelled_by, st.step = "cancelled", req.by, None
                    self._bump(st, milestone=True)
                    self._notify(DeliveryKind.TURN_CANCELLED, msg, st)
                    return
            return
        if self.current is not None and self.current_task is not None and not self.current_task.done():
            self.current.cancelled_by = req.by
            self.current_task.cancel()

    @workflow.query(name=Query.STATUS.value)
    def status(self) -> ConversationStatus:
        cur = self.current
        state = "idle" if cur is None else ("awaiting_approval" if cur.state == "awaiting_approval" else "running")
        info = workflow.info()
        return ConversationStatus(
            conversation_id=self.conv, state=state, turns=self.turns, current=cur, queued=len(self.queue),
            started_at=self.started_at, history_length=info.get_current_history_length(),
        )

    @workflow.query(name=Query.TURN.value)
    def turn(self, turn_id: str) -> TurnStatus | None:
        return self.statuses.get(turn_id)

    # ---------------------------------------------------------------- one turn
    async def _run_turn(self, msg: UserMessage, resume: TurnCheckpoint | None = None) -> None:
        st = self.statuses[msg.id]
        self.current, self.current_msg = st, msg
        if resume is None:
            st.state, st.step = "running", "thinking"
            self._bump(st)
            if msg.context and self.next_seq == 0:
                self._append(*msg.context)
            self._append(ChatMessage(role="user", content=msg.text, name=msg.user_name))
        self.turn_started = workflow.now().timestamp()
        self.turn_spoke = False
        self.current_task = asyncio.create_task(self._turn_body(msg, st, resume))
        if self.pending_cancel is not None:
            st.cancelled_by = self.pending_cancel.by
            self.pending_cancel = None
            self.current_task.cancel()
        try:
            st.text = await self.current_task
            st.state = "finished"
            kind = DeliveryKind.TURN_FINISHED
        except _Checkpoint:
            self.current = self.current_msg = self.current_task = None
            self.checkpoint = TurnCheckpoint(
                message=dataclasses.replace(msg, context=[]),  # already in the transcript
                status=st, round=self.phase[0] if self.phase else 0,
                calls=list(self.phase[1]) if self.phase else [],
                results=_bound_results(list(self.phase_results.values())),
            )
            return  # no notice: the turn goes on in the next run
        except (asyncio.CancelledError, ActivityError, ChildWorkflowError) as err:
            if st.cancelled_by is not None:  # cancelled by our cancel signal
                self._close_open_tool_calls("Not run: the request was cancelled.")
                st.state = "cancelled"
                kind = DeliveryKind.TURN_CANCELLED
            elif isinstance(err, asyncio.CancelledError):
                raise  # the workflow itself is being cancelled
            else:
                st.state, st.error, st.error_kind = "failed", *self._explain(err)
                st.error = limits.clip(st.error, limits.ERROR_BYTES, "error")
                self._close_open_tool_calls("Not run: the request failed.")
                kind = DeliveryKind.TURN_FAILED
        finally:
            self.current = self.current_msg = self.current_task = None
        st.step = None
        self.turns += 1
        self._bump(st, milestone=True)
        meter = workflow.metric_meter()
        meter.create_counter("durabot_turns", "Turns ended, by outcome").add(1, {"outcome": st.state})
        meter.create_histogram_float("durabot_turn_seconds", "Turn duration", "s").record(
            workflow.now().timestamp() - self.turn_started)
        for info in st.approvals:
            if info.status == "pending":
                info.status = "cancelled"
                self._notify(DeliveryKind.APPROVAL_DECIDED, msg, st, approval=info)
        self._notify(kind, msg, st)

    async def _turn_body(self, msg: UserMessage, st: TurnStatus, resume: TurnCheckpoint | None) -> str:
        rounds = self.spec.max_iterations
        first = 0
        if resume is not None:
            await self._tool_phase(msg, st, resume.round, resume.calls, resume.results)
            first = resume.round + 1
        for rnd in range(first, rounds + 1):
            allow_tools = rnd < rounds and bool(self.spec.tools)
            st.step = "thinking"
            result = await self._llm_round(msg, rnd, allow_tools)
            calls = result.tool_calls if allow_tools else []
            self._append(ChatMessage(role="assistant", content=result.text or None, tool_calls=calls))
            if not calls:
                return result.text
            await self._tool_phase(msg, st, rnd, calls, [])
        return ""  # unreachable: the last round allows no tools

    async def _tool_phase(
        self, msg: UserMessage, st: TurnStatus, rnd: int, calls: list[ToolCall], done: list[ToolResult]
    ) -> None:
        """Run a round's tool calls in parallel and append their results in call order."""
        self.phase = (rnd, calls)
        self.phase_results = {r.call_id: r for r in done}
        self.checkpoint_wanted = False
        todo = [c for c in calls if c.id not in self.phase_results]
        outcomes = await asyncio.gather(*(self._tool_call(msg, st, c) for c in todo), return_exceptions=True)
        if any(isinstance(o, _Checkpoint) for o in outcomes):
            raise _Checkpoint()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        results = [self.phase_results[c.id] for c in calls]
        self.phase = None
        self._append(*(ChatMessage(role="tool", content=r.output, tool_call_id=r.call_id, name=r.name)
                       for r in results))

    async def _llm_round(self, msg: UserMessage, rnd: int, allow_tools: bool) -> LLMResult:
        resync = False
        while True:
            ref = self._ref(resync)
            request = LLMRequest(
                conversation_id=self.conv, turn_id=msg.id, round=rnd, transcript=ref,
                allow_tools=allow_tools, fingerprint=self.spec.fingerprint,
                stream=self.parent.stream if self.parent else None,
                source=self.parent.source if self.parent else None,
                context_chars=self.spec.context_chars,
                turn_started=None if self.turn_spoke else self.turn_started,  # until the turn's first text
            )
            result = await workflow.execute_activity(
                LLM_ACTIVITY, request, result_type=LLMResult, **self._activity_options(self.spec.timeouts.llm),
            )
            if result.transcript_missing and not resync:
                resync = True
                continue
            self.turn_spoke = self.turn_spoke or bool(result.text)
            self.synced_seq = self.next_seq
            return result

    def _ref(self, resync: bool) -> TranscriptRef:
        window_start = self.next_seq - len(self.window)
        first_unsynced = window_start if resync else max(self.synced_seq, window_start)
        start = max(0, self.next_seq - self.spec.context_messages)  # the store has more than the window
        return TranscriptRef(
            conversation_id=self.conv, start_seq=start, end_seq=self.next_seq,
            unsynced=self.window[first_unsynced - window_start:], resync=resync,
        )

    async def _tool_call(self, msg: UserMessage, st: TurnStatus, call: ToolCall) -> ToolResult:
        result = await self._tool_call_inner(msg, st, call)
        self.phase_results[call.id] = result
        return result

    async def _tool_call_inner(self, msg: UserMessage, st: TurnStatus, call: ToolCall) -> ToolResult:
        if call.error:
            return ToolResult(call_id=call.id, name=call.name, output=f"Error: {call.error}", ok=False)
        tool_spec = self.spec.tool(call.name)
        if tool_spec is not None and tool_spec.subagent:
            return await self._delegate(msg, st, call, tool_spec.subagent)
        if self.spec.needs_approval(call.name):
            info = await self._ask_approval(msg, st, call)
            if info.status != "approved":
                why = {"denied": f"denied by {info.decided_by}", "expired": "not approved in time"}.get(
                    info.status, info.status)
                note = f" Reason: {info.reason}" if info.reason else ""
                return ToolResult(call_id=call.id, name=call.name, ok=False,
                                  output=f"The tool was not run: the call was {why}.{note}")
        st.tool_calls.append(call.name)
        st.step = f"running {call.name}"
        self._bump(st)
        request = ToolRequest(
            conversation_id=self.conv, turn_id=msg.id, call=call,
            idempotency_key=f"{self.conv}:{msg.id}:{call.id}", fingerprint=self.spec.fingerprint,
            stream=self.parent.stream if self.parent else None,
            source=self.parent.source if self.parent else None,
        )
        self.running_tools += 1
        try:
            return await workflow.execute_activity(
                TOOL_ACTIVITY, request, result_type=ToolResult, **self._activity_options(self.spec.timeouts.tool),
            )
        finally:
            self.running_tools -= 1

    async def _ask_approval(self, msg: UserMessage, st: TurnStatus, call: ToolCall) -> ApprovalInfo:
        rnd = self.phase[0] if self.phase else 0
        # Approvals of older versions carry no round: matched by call id alone, as they were.
        info = next((a for a in st.approvals if a.call_id == call.id and a.round in (None, rnd)), None)
        if info is None:
            self.approval_count += 1
            deadline = workflow.now() + timedelta(seconds=self.spec.timeouts.approval)
            unique = workflow.patched(APPROVAL_IDS_PATCH)
            info = ApprovalInfo(
                id=approval_id(msg.id, str(rnd), call.id) if unique else f"a{self.approval_count}",
                turn_id=msg.id, tool=call.name, arguments=call.arguments,
                requested_by=msg.user, call_id=call.id, deadline=deadline.isoformat(),
                approvers=None if msg.approvers is None else list(msg.approvers), admins=list(msg.admins),
                round=rnd if unique else None,
            )
            self.approvals[info.id] = info
            st.approvals.append(info)
            st.state, st.step = "awaiting_approval", f"waiting for approval of {call.name}"
            self._bump(st, milestone=True)
            self._notify(DeliveryKind.APPROVAL_REQUESTED, msg, st, approval=info)
            workflow.metric_meter().create_counter("durabot_approvals_requested", "Approvals asked").add(1)
            await self._raise_to_parent(info)
        else:  # resumed after continue-as-new: the card is already out, only wait again
            self.approvals[info.id] = info
        if info.status == "pending" and self._history_is_large():
            self.checkpoint_wanted = True
        remaining = (_parse_time(info.deadline) - workflow.now()).total_seconds() if info.deadline else None
        try:
            await workflow.wait_condition(
                lambda: info.status != "pending" or self._pause_now(),
                timeout=max(remaining, 0.001) if remaining is not None else self.spec.timeouts.approval,
            )
        except asyncio.TimeoutError:
            info.status = "expired"
        finally:
            self._trim_approvals()
        if info.status == "pending":
            raise _Checkpoint()
        if not any(a.status == "pending" for a in st.approvals):
            st.state = "running"
        self._bump(st, milestone=True)
        self._notify(DeliveryKind.APPROVAL_DECIDED, msg, st, approval=info)
        meter = workflow.metric_meter()
        meter.create_counter("durabot_approvals_decided", "Approvals ended").add(1, {"outcome": info.status})
        if info.deadline:
            asked = _parse_time(info.deadline) - timedelta(seconds=self.spec.timeouts.approval)
            meter.create_histogram_float("durabot_approval_wait_seconds", "Approval wait", "s").record(
                max(0.0, (workflow.now() - asked).total_seconds()))
        await self._raise_to_parent(info)
        return info

    def _pause_now(self) -> bool:
        # Continue as new mid-turn only once no tool is running: activities cannot cross runs.
        return self.checkpoint_wanted and self.running_tools == 0

    def _trim_approvals(self) -> None:
        decided = [k for k, a in self.approvals.items() if a.status != "pending"]
        for key in decided[: max(0, len(decided) - 50)]:
            del self.approvals[key]

    def _activity_options(self, timeout: float) -> dict:
        t = self.spec.timeouts
        return dict(
            start_to_close_timeout=timedelta(seconds=timeout),
            schedule_to_start_timeout=timedelta(seconds=t.schedule_to_start) if t.schedule_to_start else None,
            heartbeat_timeout=timedelta(seconds=t.heartbeat),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=500), backoff_coefficient=2.0,
                maximum_interval=timedelta(seconds=30), maximum_attempts=8,
                non_retryable_error_types=[ErrorType.FINGERPRINT.value, ErrorType.ABORTED.value],
            ),
        )

    def _explain(self, err: ActivityError | ChildWorkflowError) -> tuple[str, str]:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == ErrorType.FINGERPRINT:
            worker_manifest = cause.details[0] if cause.details else {}
            return describe_mismatch(self.spec.manifest, worker_manifest), ErrorType.FINGERPRINT.value
        if isinstance(cause, ApplicationError):
            return cause.message, cause.type or "ApplicationError"
        if isinstance(cause, CancelledError):
            return "the activity was cancelled", "Cancelled"
        return str(cause or err), type(cause or err).__name__

    # ---------------------------------------------------------------- transcript window
    def _append(self, *messages: ChatMessage) -> None:
        sizes = [limits.message_bytes(m) for m in messages]
        self.window.extend(messages)
        self.window_sizes.extend(sizes)
        self.window_bytes += sum(sizes)
        self.next_seq += len(messages)
        limit = self.spec.context_messages + _WINDOW_SLACK
        if len(self.window) > limit:
            cut = len(self.window) - limit
            self.window_bytes -= sum(self.window_sizes[:cut])
            del self.window[:cut], self.window_sizes[:cut]
        if self.window_bytes > limits.WINDOW_BYTES:
            self._bound_window()

    def _bound_window(self) -> None:
        # The window rides in the carry and in every model round's input: the oldest texts give way
        # to stubs, and stubs past the budget (a very long window) to nothing. The transcript store
        # still holds the whole messages it was sent; the model is told of any it cannot get.
        self.window_bytes = limits.bound_messages(self.window, self.window_sizes, limits.WINDOW_BYTES)
        cut = 0
        while self.window_bytes > limits.WINDOW_BYTES and cut < len(self.window) - 1:
            self.window_bytes -= self.window_sizes[cut]
            cut += 1
        del self.window[:cut], self.window_sizes[:cut]

    def _close_open_tool_calls(self, note: str) -> None:
        answered = {m.tool_call_id for m in self.window if m.role == "tool"}
        for m in reversed(self.window):
            if m.role == "assistant" and m.tool_calls:
                missing = [c for c in m.tool_calls if c.id not in answered]
                self._append(*(ChatMessage(role="tool", content=note, tool_call_id=c.id, name=c.name)
                               for c in missing))
                return
            if m.role == "user":
                return

    # ---------------------------------------------------------------- status and delivery
    def _bump(self, st: TurnStatus, milestone: bool = False) -> None:
        st.version += 1
        if milestone:
            st.milestone += 1

    def _notify(self, kind: DeliveryKind, msg: UserMessage, st: TurnStatus, approval: ApprovalInfo | None = None) -> None:
        if msg.deliver_to is None:
            return
        info = workflow.info()
        self.outbox.append((msg.deliver_to.task_queue, Delivery(
            kind=kind, conversation_id=self.conv, turn_id=msg.id, meta=dict(msg.deliver_to.meta),
            text=st.text if kind is DeliveryKind.TURN_FINISHED else (st.error if kind is DeliveryKind.TURN_FAILED else None),
            approval=approval, tool_calls=list(st.tool_calls), workflow_id=info.workflow_id, run_id=info.run_id,
            by=st.cancelled_by if kind is DeliveryKind.TURN_CANCELLED else None,
        )))
        if not self.delivering:
            self.delivering = True
            asyncio.create_task(self._deliver_all())

    async def _deliver_all(self) -> None:
        # One at a time, in order: a decision never overtakes its card, nor an answer its approvals.
        # An item never blocks the ones behind it for long: the adapter's activity retries outages
        # until they pass and fails for good (non-retryable) on anything retrying cannot fix.
        try:
            while self.outbox:
                task_queue, item = self.outbox[0]
                try:
                    await workflow.execute_activity(
                        DELIVER_ACTIVITY, item, task_queue=task_queue, **_DELIVERY_OPTIONS)
                except ActivityError as err:
                    cause = err.cause
                    why = cause.type if isinstance(cause, ApplicationError) else type(cause or err).__name__
                    workflow.logger.warning(
                        "delivery %s of conversation %s turn %s dropped (%s): %s", item.kind, self.conv,
                        item.turn_id, why, cause.message if isinstance(cause, ApplicationError) else cause)
                self.outbox.pop(0)
        finally:
            self.delivering = False


# Delivery activity options. 20 s to close: a delivery cut short by an adapter crash is retried soon.
# Retries go on for a day (an adapter or a platform that is down still gets its notices), except for
# the failures the adapter marks as final: a refusal for good, or a notice not even plain text could show.
_DELIVERY_OPTIONS = dict(
    start_to_close_timeout=timedelta(seconds=20),
    schedule_to_close_timeout=timedelta(days=1),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=30),
        non_retryable_error_types=[ErrorType.DELIVERY_REFUSED.value, ErrorType.DELIVERY_FAILED.value],
    ),
)


def _refusal(msg: UserMessage) -> str | None:
    """Why a message cannot be taken as it is (its id and delivery target are kept, not cut)."""
    if len(msg.id) > limits.NAME_CHARS:
        return f"message id is {len(msg.id)} characters long; at most {limits.NAME_CHARS} are accepted"
    if msg.deliver_to is not None and limits.payload_size(msg.deliver_to) > limits.ERROR_BYTES:
        return f"the delivery target is larger than {limits.ERROR_BYTES} bytes"
    return None


def _bound_results(results: list[ToolResult]) -> list[ToolResult]:
    """A paused turn's finished tool results, cut (oldest first) to fit the next run's input."""
    total = sum(limits.encoded_len(r.output) for r in results)
    out = []
    for r in results:
        if total > limits.CHECKPOINT_BYTES:
            short = limits.clip(r.output, 1_000, "tool output")
            total -= limits.encoded_len(r.output) - limits.encoded_len(short)
            r = dataclasses.replace(r, output=short)
        out.append(r)
    return out


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)
