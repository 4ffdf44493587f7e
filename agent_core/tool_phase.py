"""One model round's tool calls, as part of the conversation workflow: run in parallel, each behind
the approval gate when the policy asks for one, delegations as child workflows. Workflow code.

A pause for continue-as-new (``Checkpoint``) can come only while approval waits are all that remain:
activities cannot cross runs, so the phase keeps what is finished and how many tools still run.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from .approvals import ApprovalGate, Checkpoint
    from .contract import TOOL_ACTIVITY
    from .delegation import delegate
    from .retries import activity_options
    from .types import (
        AgentSpec, InlineTools, ParentLink, ToolCall, ToolRequest, ToolResult, TurnStatus, UserMessage,
    )

# A local tool's call must end within this long (or the tool timeout, if shorter): it holds the
# workflow task, so the conversation takes no message, decision or cancel until it returns.
LOCAL_TOOL_TIMEOUT = 10.0


class ToolPhase:
    def __init__(self, spec: AgentSpec, conv: str, parent: ParentLink | None, gate: ApprovalGate,
                 history_is_large: Callable[[], bool]) -> None:
        self.spec = spec
        self.conv = conv
        self.parent = parent
        self.gate = gate
        self.history_is_large = history_is_large
        self.current: tuple[int, list[ToolCall]] | None = None  # the round and calls in flight
        self.results: dict[str, ToolResult] = {}  # by call id, of the calls in flight
        self.checkpoint_wanted = False
        self.running_tools = 0
        self.local_allowed = False  # set by the workflow: runs with the lean-turns patch only

    def inline_offer(self, msg: UserMessage, last_round: int) -> InlineTools | None:
        """The local tools a model round's activity may run itself (inline-tools patch): those _call would
        run as local activities without asking anyone, each under the same idempotency key."""
        profile = msg.profile
        names = [t.name for t in self.spec.tools if t.local and not t.subagent
                 and (profile is None or profile.tools is None or t.name in profile.tools)
                 and (not self.spec.needs_approval(t.name, profile)
                      or (not self.gate.admin_only(t.name) and self.gate.allowed(t.name)))]
        if not names:
            return None
        timeouts = self.spec.for_turn(profile).timeouts
        return InlineTools(tools=names, last_round=last_round, key_prefix=f"{self.conv}:{msg.id}:",
                           tool_timeout=min(LOCAL_TOOL_TIMEOUT, timeouts.tool), round_timeout=timeouts.llm)

    async def run(self, msg: UserMessage, st: TurnStatus, rnd: int, calls: list[ToolCall],
                  done: list[ToolResult]) -> list[ToolResult]:
        """Run the calls not ``done`` yet; the results in call order. Raises Checkpoint to pause."""
        self.current = (rnd, calls)
        self.results = {r.call_id: r for r in done}
        self.checkpoint_wanted = False
        todo = [c for c in calls if c.id not in self.results]
        outcomes = await asyncio.gather(*(self._call(msg, st, c) for c in todo), return_exceptions=True)
        if any(isinstance(o, Checkpoint) for o in outcomes):
            raise Checkpoint()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        results = [self.results[c.id] for c in calls]
        self.current = None
        return results

    @property
    def round(self) -> int:
        return self.current[0] if self.current else 0

    def checkpoint_if_history_large(self) -> None:
        if self.history_is_large():
            self.checkpoint_wanted = True

    def pause_now(self) -> bool:
        # Continue as new mid-turn only once no tool is running: activities cannot cross runs.
        return self.checkpoint_wanted and self.running_tools == 0

    async def _call(self, msg: UserMessage, st: TurnStatus, call: ToolCall) -> ToolResult:
        result = await self._call_inner(msg, st, call)
        self.results[call.id] = result
        return result

    async def _call_inner(self, msg: UserMessage, st: TurnStatus, call: ToolCall) -> ToolResult:
        if call.error:
            return ToolResult(call_id=call.id, name=call.name, output=f"Error: {call.error}", ok=False)
        tool_spec = self.spec.tool(call.name)
        if tool_spec is not None and tool_spec.subagent:
            return await delegate(self.spec, self.conv, self.parent, msg, st, call, tool_spec.subagent)
        if msg.profile is not None and msg.profile.tools is not None and call.name not in msg.profile.tools:
            return ToolResult(call_id=call.id, name=call.name, ok=False,
                              output=f"Error: the tool {call.name!r} is not available in this channel.")
        if self.spec.needs_approval(call.name, msg.profile) and not self.gate.allowed(call.name):
            info = await self.gate.ask(msg, st, call, self.round)
            if info.status != "approved":
                why = {"denied": f"denied by {info.decided_by}", "expired": "not approved in time"}.get(
                    info.status, info.status)
                note = f" Reason: {info.reason}" if info.reason else ""
                return ToolResult(call_id=call.id, name=call.name, ok=False,
                                  output=f"The tool was not run: the call was {why}.{note}")
        st.tool_calls.append(call.name)
        st.step = f"running {call.name}"
        st.bump()
        request = ToolRequest(
            conversation_id=self.conv, turn_id=msg.id, call=call,
            idempotency_key=f"{self.conv}:{msg.id}:{call.id}", fingerprint=self.spec.fingerprint,
            stream=self.parent.stream if self.parent else None,
            source=self.parent.source if self.parent else None,
        )
        timeouts = self.spec.for_turn(msg.profile).timeouts  # the mode of the turn's profile
        self.running_tools += 1
        try:
            options = activity_options(timeouts, timeouts.tool)
            if self.local_allowed and tool_spec is not None and tool_spec.local:
                # In this workflow task: its result and the next model round go out in one completion.
                return await workflow.execute_local_activity(
                    TOOL_ACTIVITY, request, result_type=ToolResult, retry_policy=options["retry_policy"],
                    start_to_close_timeout=timedelta(seconds=min(LOCAL_TOOL_TIMEOUT, timeouts.tool)),
                )
            return await workflow.execute_activity(TOOL_ACTIVITY, request, result_type=ToolResult, **options)
        finally:
            self.running_tools -= 1
