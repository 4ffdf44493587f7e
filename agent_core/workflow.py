"""The conversation workflow: one per conversation, deterministic, holding only small state.

It queues messages, runs turns (LLM round -> tool calls behind the approval gate, in parallel ->
repeat), waits for the next message, ends after an idle timeout and continues-as-new before its
history grows large. The transcript reaches activities by reference (``TranscriptRef``). Durable
notices for chat platforms go out through a delivery activity on the adapter's task queue.

Its parts, each given what it needs explicitly: ``TranscriptWindow`` (window.py), ``ApprovalGate``
(approvals.py, through the ``GateHost`` methods at the end of this class), ``ToolPhase``
(tool_phase.py, with sub-agents in delegation.py), ``model_round`` (model_round.py), ``Outbox``
(outbox.py), ``IdleWatch`` (idle.py), ``SeenIds`` (seen_ids.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Callable

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from . import limits
    from .seen_ids import SeenIds
    from .retries import explain
    from .approvals import ApprovalGate, Checkpoint
    from .contract import RESTORE_ACTIVITY, WORKFLOW, DeliveryKind, ErrorType
    from .contract import Query, Signal, Update
    from .feedback import FeedbackBook
    from .feedback import refusal as feedback_refusal
    from .idle import IdleWatch, timer_per_period
    from .model_round import model_round
    from .outbox import Outbox
    from .tool_phase import ToolPhase
    from .types import (
        ApprovalInfo,
        CancelRequest,
        Carry,
        ChatMessage,
        ChildApproval,
        ConversationInput,
        ContextState,
        ConversationStatus,
        Decision,
        LLMResult,
        Feedback,
        ParentLink,
        Allowance,
        Progress,
        ProgressQuery,
        RevokeRequest,
        Timeouts,
        ToolCall,
        ToolSpec,
        ToolResult,
        TurnCheckpoint,
        TurnStatus,
        UserMessage,
    )
    from .window import TranscriptWindow


_RECENT = 10  # finished turns carried across continue-as-new
# Patch id of moving to the deployment's current version by continue-as-new (between turns only).
UPGRADE_PATCH = "upgrade-on-continue-as-new"
BUDGET_STOP_PATCH = "budget-stop"  # a round past the day's token budget ends its turn
# Runs from this change on: tools marked local run as local activities, and the idle timer starts
# only once the conversation has nothing to do (one marker for both, recorded in the first task; such
# runs skip the idle-timer patch, whose behaviour they keep).
LEAN_TURNS_PATCH = "lean-turns"
# Runs from this change on: a model round's activity may run the round's local tools itself and make
# the next round (inline.py), when the round asks for nothing else; the workflow records every round.
INLINE_TOOLS_PATCH = "inline-tools"
BUDGET_NOTICE = ("Stopped here: this turn used up the day's token budget (yours or this channel's). "
                 "Ask an admin to allow more.")


# Versioned workers run this workflow PINNED (their deployment's default behaviour, versioning.py;
# not set here, because the server refuses a behaviour from an unversioned worker): a run stays on the
# build it started on, whatever is deployed meanwhile, and moves to the current build at a
# continue-as-new between turns (_should_move).
@workflow.defn(name=WORKFLOW)
class ConversationWorkflow:
    @workflow.init
    def __init__(self, inp: ConversationInput) -> None:
        self.conv = inp.conversation_id
        self.spec = inp.spec
        # Sub-agents: this run's parent, if it is one (its task is one turn; approvals are raised to it).
        self.parent: ParentLink | None = inp.parent
        self.gate = ApprovalGate(self, inp.parent)
        self.outbox = Outbox(self.conv)
        self.feedback = FeedbackBook()
        self._apply_carry(inp.carry or Carry())
        self.queue: list[UserMessage] = []
        self.statuses: dict[str, TurnStatus] = {s.turn_id: s for s in self.carry_in.recent}
        for msg in inp.pending:
            self._enqueue(msg)
        self.current: TurnStatus | None = None
        self.current_msg: UserMessage | None = None
        self.current_task: asyncio.Task | None = None
        self.continuing = False
        self.started_at = workflow.now().isoformat()
        self.turn_started = workflow.now().timestamp()
        self.turn_spoke = False
        # Pausing a turn for continue-as-new (see Checkpoint).
        self.resume = inp.resume
        self.pending_cancel: CancelRequest | None = inp.cancel
        self.tools = ToolPhase(self.spec, self.conv, self.parent, self.gate, self._history_is_large)
        self.checkpoint: TurnCheckpoint | None = None
        if inp.resume is not None:
            st = inp.resume.status
            self.statuses[st.turn_id] = st
            for info in st.approvals:
                if info.status == "pending":
                    self.gate.approvals[info.id] = info  # decisions are accepted from the first task on

    def _apply_carry(self, carry: Carry) -> None:
        self.carry_in = carry
        self.window = TranscriptWindow(carry.window, carry.next_seq)
        self.turns = carry.turns
        self.gate.count = carry.approvals
        self.gate.allowances = {a.tool: a for a in carry.allowances}
        self.profile = carry.profile
        self.tokens = carry.tokens
        self.seen = SeenIds(carry.seen_message_ids)
        self.feedback.merge(carry.feedback)  # a rating taken before a restore stays on top
        # The summary and pinned request go on; the budget is this run's (the client's model may change).
        self.context: ContextState | None = None
        if self.spec.context_tokens:
            self.context = carry.context or ContextState()
            self.context.budget = self.spec.context_tokens

    # ---------------------------------------------------------------- main loop
    @workflow.run
    async def run(self, inp: ConversationInput) -> Carry:
        lean = workflow.patched(LEAN_TURNS_PATCH)
        self.tools.local_allowed = lean
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
            if previous is not None and previous.next_seq > self.window.next_seq:
                seen = self.seen.order
                self._apply_carry(previous)
                for mid in seen:
                    self.seen.add(mid)
        if self.resume is not None:
            await self._run_turn(self.resume.message, self.resume)
            await self._continue_as_new_if_needed()
        if lean:
            return await self._loop_with_a_timer_when_idle()
        if not timer_per_period():
            return await self._loop_with_a_timer_per_wait()
        # The idle timeout of the mode of the profile the last turn ran under (AgentSpec.for_turn).
        watch = IdleWatch(self.spec.for_turn(self.profile).timeouts.idle,
                          lambda: self.current is not None or bool(self.queue))
        watch.start()
        while True:
            if self.parent is not None and self.turns and not self.queue:
                return self._carry()  # a sub-agent's task is one turn; its answer is in carry.recent
            await workflow.wait_condition(lambda: bool(self.queue) or watch.idle)
            if not self.queue:
                await workflow.wait_condition(lambda: self.outbox.empty and workflow.all_handlers_finished())
                if not self.queue:
                    return self._carry()
                watch.start()
            if self._should_move():
                await self._continue_as_new(upgrade=True)  # the queued message runs on the new build
            msg = self.queue.pop(0)
            await self._run_turn(msg)
            watch.touch()
            watch.set_seconds(self.spec.for_turn(self.profile).timeouts.idle)
            await self._continue_as_new_if_needed()

    async def _loop_with_a_timer_when_idle(self) -> Carry:
        """The message loop of lean-turns runs: the idle timer starts the first time the run waits
        with nothing queued, not with the run, so a message that starts a run costs no timer; it then
        re-arms only after it fires (IdleWatch)."""
        # The idle timeout of the mode of the profile the last turn ran under (AgentSpec.for_turn).
        watch = IdleWatch(self.spec.for_turn(self.profile).timeouts.idle,
                          lambda: self.current is not None or bool(self.queue))
        watching = False
        while True:
            if self.parent is not None and self.turns and not self.queue:
                return self._carry()  # a sub-agent's task is one turn; its answer is in carry.recent
            if not watching and not self.queue:
                watch.touch()
                watch.start()
                watching = True
            await workflow.wait_condition(lambda: bool(self.queue) or watch.idle)
            if not self.queue:
                await workflow.wait_condition(lambda: self.outbox.empty and workflow.all_handlers_finished())
                if not self.queue:
                    return self._carry()
                watching = False  # a message came while the outbox drained: a new idle period later
            if self._should_move():
                await self._continue_as_new(upgrade=True)  # the queued message runs on the new build
            msg = self.queue.pop(0)
            await self._run_turn(msg)
            watch.touch()
            watch.set_seconds(self.spec.for_turn(self.profile).timeouts.idle)
            await self._continue_as_new_if_needed()

    async def _loop_with_a_timer_per_wait(self) -> Carry:
        """The message loop of runs that started before the one-timer-per-idle-period change."""
        while True:
            if self.parent is not None and self.turns and not self.queue:
                return self._carry()
            try:
                await workflow.wait_condition(lambda: bool(self.queue), timeout=self.spec.timeouts.idle)
            except asyncio.TimeoutError:
                if not self.queue:
                    await workflow.wait_condition(lambda: self.outbox.empty and workflow.all_handlers_finished())
                    if not self.queue:
                        return self._carry()
            msg = self.queue.pop(0)
            await self._run_turn(msg)
            await self._continue_as_new_if_needed()

    async def _continue_as_new_if_needed(self) -> None:
        if self.checkpoint is not None:
            # Mid-turn, for history size: the paused turn resumes in the next run, on this build,
            # unless Temporal already announced a new build. A run that continues as new without
            # moving then counts as having declined that build and is not told of it again, so it
            # would stay pinned here; the checkpoint is plain data, so the new build resumes it.
            await self._continue_as_new(upgrade=self._should_move())
        elif self._should_move():
            await self._continue_as_new(upgrade=True)
        elif self._history_is_large() and not self._pending_too_large():
            await self._continue_as_new()

    def _should_move(self) -> bool:
        """Between turns, whether to continue as new onto the deployment's new target version.

        Temporal sets the flag on a workflow task of a pinned run once another version became
        current (or ramps to it). Checked between turns (and at a history-size checkpoint, see
        _continue_as_new_if_needed), never in a sub-agent (its run is one turn, then it ends)."""
        if self.parent is not None or not workflow.info().is_target_worker_deployment_version_changed():
            return False
        return workflow.patched(UPGRADE_PATCH)

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

    async def _continue_as_new(self, upgrade: bool = False) -> None:
        self.continuing = True  # long polls return "continued" and ask the next run
        await workflow.wait_condition(lambda: self.outbox.empty and workflow.all_handlers_finished())
        workflow.continue_as_new(
            ConversationInput(
                conversation_id=self.conv, spec=self.spec, carry=self._carry(),
                pending=list(self.queue), restored=True, resume=self.checkpoint,
                cancel=self.pending_cancel if self.checkpoint is not None else None,
            ),
            # The next run starts on the target version instead of inheriting this run's pin.
            initial_versioning_behavior=workflow.ContinueAsNewVersioningBehavior.AUTO_UPGRADE if upgrade else None,
        )

    def _carry(self) -> Carry:
        finished = limits.bound_statuses([s for s in self.statuses.values() if s.done][-_RECENT:])
        return Carry(
            window=list(self.window.messages), next_seq=self.window.next_seq, turns=self.turns,
            approvals=self.gate.count, seen_message_ids=list(self.seen.order), recent=finished,
            allowances=list(self.gate.allowances.values()), profile=self.profile, tokens=self.tokens,
            feedback=self.feedback.carry(),
            context=self.context,
        )

    # ---------------------------------------------------------------- messages in
    @workflow.update(name=Update.SUBMIT.value)
    def submit(self, msg: UserMessage) -> TurnStatus:
        if msg.id in self.seen:
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

    @workflow.update(name=Update.SUBMIT_AND_FOLLOW.value)
    async def submit_and_follow(self, msg: UserMessage) -> Progress:
        """Submit, then answer at the turn's first milestone (an approval asked, or the end): a caller
        following a turn needs no second update unless the turn waits for a person."""
        accepted = self.submit(msg)
        st = self.statuses.get(msg.id)
        if st is None or accepted.duplicate:
            return Progress(turn=accepted)
        seen = st.milestone
        await workflow.wait_condition(lambda: st.milestone > seen or self.continuing)
        return Progress(turn=st, continued=st.milestone <= seen)

    @submit.validator
    def _validate_submit(self, msg: UserMessage) -> None:
        problem = limits.refusal(msg)
        if problem:
            raise ApplicationError(problem, type=ErrorType.MESSAGE_REJECTED.value)

    @submit_and_wait.validator
    def _validate_submit_and_wait(self, msg: UserMessage) -> None:
        self._validate_submit(msg)

    @submit_and_follow.validator
    def _validate_submit_and_follow(self, msg: UserMessage) -> None:
        self._validate_submit(msg)

    @workflow.signal(name=Signal.SUBMIT.value)
    def submit_signal(self, msg: UserMessage) -> None:
        problem = limits.refusal(msg)
        if problem:
            workflow.logger.warning("message dropped: %s", problem)  # a signal cannot be answered
        elif msg.id not in self.seen:
            self._enqueue(msg)

    def _enqueue(self, msg: UserMessage) -> TurnStatus:
        limits.bound_user_message(msg)  # a client of another version may not have cut it
        self.seen.add(msg.id)
        status = TurnStatus(turn_id=msg.id, state="queued", step="queued",
                            meta=dict(msg.deliver_to.meta) if msg.deliver_to else {})
        self.statuses[msg.id] = status
        self.queue.append(msg)
        self._trim_statuses()
        return status

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
        return await self.gate.decide(d)

    @decide.validator
    def _validate_decision(self, d: Decision) -> None:
        self.gate.validate(d, self.continuing)

    @workflow.update(name=Update.REVOKE.value)
    def revoke(self, req: RevokeRequest) -> Allowance | None:
        """End a tool's thread-wide allowance (None: it had none); its next call asks again."""
        return self.gate.revoke(req)

    @revoke.validator
    def _validate_revoke(self, req: RevokeRequest) -> None:
        if self.continuing:  # the next run carries the allowances: ask it
            raise ApplicationError("the conversation is moving to a new run; try again",
                                   type=ErrorType.CONTINUING.value)
    @workflow.update(name=Update.FEEDBACK.value)
    def rate(self, f: Feedback) -> Feedback:
        """Record a person's rating of an answer; their earlier rating of the same answer is replaced.
        No command is emitted: the rating is state, carried to the next run like the transcript."""
        return self.feedback.record(f, workflow.now().isoformat())

    @workflow.query(name=Query.FEEDBACK.value)
    def ratings(self) -> list[Feedback]:
        return self.feedback.carry()

    @rate.validator
    def _validate_rating(self, f: Feedback) -> None:
        problem = feedback_refusal(f)
        if problem:
            raise ApplicationError(problem, type=ErrorType.FEEDBACK_REJECTED.value)

    @workflow.signal(name=Signal.DECIDE_CHILD.value)
    async def decide_signal(self, d: Decision) -> None:
        await self.gate.decide_from_parent(d, self.continuing)

    @workflow.signal(name=Signal.CHILD_APPROVAL.value)
    async def child_approval(self, ca: ChildApproval) -> None:
        await self.gate.from_child(ca)

    @workflow.query(name=Query.APPROVAL.value)
    def approval(self, approval_id: str) -> ApprovalInfo | None:
        """One approval of this run, with its whole arguments (cards show them shortened)."""
        return self.gate.approvals.get(approval_id)

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
                    st.bump(milestone=True)
                    self.notify(DeliveryKind.TURN_CANCELLED, msg, st)
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
        version = info.get_current_deployment_version()
        status = ConversationStatus(
            conversation_id=self.conv, state=state, turns=self.turns, current=cur, queued=len(self.queue),
            started_at=self.started_at, history_length=info.get_current_history_length(),
            allowances=list(self.gate.allowances.values()),
            profile=f"{self.profile.name}@{self.profile.version}" if self.profile else None, tokens=self.tokens,
            feedback=self.feedback.counts(), build_id=version.build_id if version is not None else None,
        )
        ctx = self.context
        if ctx is not None:
            status.context_tokens, status.context_budget = ctx.last_tokens, ctx.budget
            status.summarised_turn, status.summarised_at, status.summaries = (
                ctx.summarised_turn, ctx.summarised_at, ctx.summaries)
        return status

    @workflow.query(name=Query.TURN.value)
    def turn(self, turn_id: str) -> TurnStatus | None:
        return self.statuses.get(turn_id)

    # ---------------------------------------------------------------- one turn
    async def _run_turn(self, msg: UserMessage, resume: TurnCheckpoint | None = None) -> None:
        st = self.statuses[msg.id]
        self.current, self.current_msg = st, msg
        if resume is None:
            st.state, st.step = "running", "thinking"
            st.bump()
            if msg.context and self.window.next_seq == 0:
                self._append(*msg.context)
            first = ChatMessage(role="user", content=msg.text, name=msg.user_name,
                                attachments=list(msg.attachments))
            if self.context is not None and self.context.pinned_seq is None and self.turns == 0:
                self.context.pinned_seq = self.window.next_seq  # the first request is sent in every round
                self.context.pinned = dataclasses.replace(first, content=limits.clip(msg.text, limits.PINNED_BYTES, "message"))
            self._append(first)
        self.turn_started = workflow.now().timestamp()
        self.turn_spoke = False
        if msg.profile is not None:  # pinned for the turn: a newer profile comes with the next message
            self.profile = msg.profile
        self.current_task = asyncio.create_task(self._turn_body(msg, st, resume))
        if self.pending_cancel is not None:
            st.cancelled_by = self.pending_cancel.by
            self.pending_cancel = None
            self.current_task.cancel()
        try:
            st.text = await self.current_task
            st.state = "finished"
            kind = DeliveryKind.TURN_FINISHED
        except Checkpoint:
            self.current = self.current_msg = self.current_task = None
            self.checkpoint = TurnCheckpoint(
                message=dataclasses.replace(msg, context=[]),  # already in the transcript
                status=st, round=self.tools.round,
                calls=list(self.tools.current[1]) if self.tools.current else [],
                results=limits.bound_results(list(self.tools.results.values())),
            )
            return  # no notice: the turn goes on in the next run
        except (asyncio.CancelledError, ActivityError, ChildWorkflowError) as err:
            if st.cancelled_by is not None:  # cancelled by our cancel signal
                self._append(*self.window.open_tool_calls("Not run: the request was cancelled."))
                st.state = "cancelled"
                kind = DeliveryKind.TURN_CANCELLED
            elif isinstance(err, asyncio.CancelledError):
                raise  # the workflow itself is being cancelled
            else:
                st.state, st.error, st.error_kind = "failed", *explain(err, self.spec.manifest)
                st.error = limits.clip(st.error, limits.ERROR_BYTES, "error")
                self._append(*self.window.open_tool_calls("Not run: the request failed."))
                kind = DeliveryKind.TURN_FAILED
        finally:
            self.current = self.current_msg = self.current_task = None
        st.step = None
        self.turns += 1
        st.bump(milestone=True)
        meter = workflow.metric_meter()
        meter.create_counter("durabot_turns", "Turns ended, by outcome").add(1, {"outcome": st.state})
        meter.create_histogram_float("durabot_turn_seconds", "Turn duration", "s").record(
            workflow.now().timestamp() - self.turn_started)
        for info in st.approvals:
            if info.status == "pending":
                info.status = "cancelled"
                self.notify(DeliveryKind.APPROVAL_DECIDED, msg, st, approval=info)
        self.notify(kind, msg, st)

    async def _turn_body(self, msg: UserMessage, st: TurnStatus, resume: TurnCheckpoint | None) -> str:
        # patched() only where a local tool exists: other histories never see the marker.
        local = self.tools.local_allowed and any(t.local for t in self.spec.tools)
        if local and workflow.patched(INLINE_TOOLS_PATCH):
            return await self._turn_body_inline(msg, st, resume)
        rounds = msg.profile.max_iterations if msg.profile and msg.profile.max_iterations else self.spec.max_iterations
        first = 0
        if resume is not None:
            await self._tool_phase(msg, st, resume.round, resume.calls, resume.results)
            first = resume.round + 1
        for rnd in range(first, rounds + 1):
            allow_tools = rnd < rounds and bool(self.spec.tools)
            st.step = "thinking"
            result = await model_round(self.spec.for_turn(msg.profile), self.conv, self.parent, self.window, msg.id,
                                       rnd, allow_tools, None if self.turn_spoke else self.turn_started,
                                       profile=msg.profile,
                                       budget=msg.budget, ctx=self.context, turns=self.turns)
            self.turn_spoke = self.turn_spoke or bool(result.text)
            self._count_tokens(st, result.prompt_tokens, result.completion_tokens, result.usage_estimated)
            calls = result.tool_calls if allow_tools else []
            answer = self._record_answer(result, calls, lambda: workflow.patched(BUDGET_STOP_PATCH))
            if answer is not None:
                return answer
            await self._tool_phase(msg, st, rnd, calls, [])
        return ""  # unreachable: the last round allows no tools

    async def _turn_body_inline(self, msg: UserMessage, st: TurnStatus, resume: TurnCheckpoint | None) -> str:
        """The turn of runs with the inline-tools patch: a model round offered the turn's local tools may
        come back with earlier rounds made in its activity (``result.steps``), each recorded as a round
        and its tool phase would have been; the round after them is then handled as any other."""
        rounds = (msg.profile.max_iterations if msg.profile and msg.profile.max_iterations
                  else self.spec.max_iterations)
        rnd = 0
        if resume is not None:
            await self._tool_phase(msg, st, resume.round, resume.calls, resume.results)
            rnd = resume.round + 1
        while rnd <= rounds:
            allow_tools = rnd < rounds and bool(self.spec.tools)
            st.step = "thinking"
            result = await model_round(
                self.spec.for_turn(msg.profile), self.conv, self.parent, self.window, msg.id, rnd, allow_tools,
                None if self.turn_spoke else self.turn_started, profile=msg.profile, budget=msg.budget,
                ctx=self.context, turns=self.turns,
                inline=self.tools.inline_offer(msg, rounds) if allow_tools else None)
            for step in result.steps:
                self._count_tokens(st, step.prompt_tokens, step.completion_tokens, step.usage_estimated)
                self.turn_spoke = self.turn_spoke or bool(step.text)
                self._append(ChatMessage(role="assistant", content=step.text or None,
                                         tool_calls=step.tool_calls))
                st.tool_calls.extend(c.name for c in step.tool_calls if not c.error)
                self._append_results(st, step.results)
                rnd += 1
            if result.steps:
                st.bump()
            allow_tools = rnd < rounds and bool(self.spec.tools)
            self.turn_spoke = self.turn_spoke or bool(result.text)
            self._count_tokens(st, result.prompt_tokens, result.completion_tokens, result.usage_estimated)
            calls = result.tool_calls if allow_tools else []
            answer = self._record_answer(result, calls, lambda: True)  # these runs have the budget stop
            if answer is not None:
                return answer
            await self._tool_phase(msg, st, rnd, calls, [])
            rnd += 1
        return ""  # unreachable: the last round allows no tools

    def _record_answer(self, result: LLMResult, calls: list[ToolCall], budget_stop: Callable[[], bool]) -> str | None:
        """Append a round's answer; the turn's text when the turn ends with it, None when its tools run next.
        ``budget_stop`` is asked only when a round past the day's budget asked for tools."""
        if calls and result.over_budget and budget_stop():
            # The round took the day's budget: its answer stands, the tools it asked for do not run.
            self._append(ChatMessage(role="assistant", content=result.text or None))
            return ((result.text + "\n\n") if result.text else "") + BUDGET_NOTICE
        self._append(ChatMessage(role="assistant", content=result.text or None, tool_calls=calls))
        return None if calls else result.text

    def _count_tokens(self, st: TurnStatus, prompt: int, completion: int, estimated: bool) -> None:
        st.prompt_tokens += prompt
        st.completion_tokens += completion
        st.tokens_estimated = st.tokens_estimated or estimated
        self.tokens += prompt + completion

    def _append_results(self, st: TurnStatus, results: list[ToolResult]) -> None:
        for r in results:  # files a tool made go out with the turn's answer
            st.files.extend(r.attachments[:max(0, limits.TURN_FILES - len(st.files))])
        self._append(*(ChatMessage(role="tool", content=r.output, tool_call_id=r.call_id, name=r.name,
                                   attachments=list(r.attachments)) for r in results))

    async def _tool_phase(
        self, msg: UserMessage, st: TurnStatus, rnd: int, calls: list[ToolCall], done: list[ToolResult]
    ) -> None:
        """Run a round's tool calls in parallel and append their results in call order."""
        self._append_results(st, await self.tools.run(msg, st, rnd, calls, done))

    # ---------------------------------------------------------------- what the approval gate needs
    def current_turn(self) -> tuple[UserMessage | None, TurnStatus | None]:
        return self.current_msg, self.current

    def notify(self, kind: DeliveryKind, msg: UserMessage, st: TurnStatus, approval: ApprovalInfo | None = None) -> None:
        self.outbox.notify(kind, msg, st, approval)

    def tool_spec(self, name: str) -> ToolSpec | None:
        return self.spec.tool(name)

    def turn_timeouts(self, msg: UserMessage) -> Timeouts:
        return self.spec.for_turn(msg.profile).timeouts

    def checkpoint_if_history_large(self) -> None:
        self.tools.checkpoint_if_history_large()

    def pause_now(self) -> bool:
        return self.tools.pause_now()

    def _append(self, *messages: ChatMessage) -> None:
        self.window.append(self.spec.context_messages, *messages)
