"""Sub-agents, as part of the conversation workflow: delegating a task to a child workflow on the
sub-agent's task queue, and approvals that children raise to their parent and get decided through it.

A mixin of ``ConversationWorkflow`` (its state is set up there); deterministic, no I/O.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from .contract import WORKFLOW, DeliveryKind, Signal
    from .approvals import APPROVAL_IDS_PATCH, approval_id
    from .events import stream_key
    from .types import (
        ApprovalInfo,
        Carry,
        ChildApproval,
        ConversationInput,
        Decision,
        ParentLink,
        ToolCall,
        ToolResult,
        TurnStatus,
        UserMessage,
    )


class Delegation:
    @workflow.signal(name=Signal.DECIDE_CHILD.value)
    async def decide_signal(self, d: Decision) -> None:
        """A parent passing down a decision on an approval this sub-agent raised to it."""
        info = self.approvals.get(d.approval_id)
        if info is not None and info.status == "pending" and not self.continuing:
            await self._apply_decision(info, d)

    async def _apply_decision(self, info: ApprovalInfo, d: Decision) -> None:
        info.status = "approved" if d.approved else "denied"
        info.decided_by = d.by
        info.reason = d.reason
        target = self.proxy_targets.get(info.id)
        if target is not None:  # the approval belongs to a sub-agent: it decides there
            self._proxy_resolved(info)
            await workflow.get_external_workflow_handle(target[0]).signal(
                Signal.DECIDE_CHILD.value, Decision(target[1], d.approved, d.by, d.reason, admin=d.admin))

    @workflow.signal(name=Signal.CHILD_APPROVAL.value)
    async def child_approval(self, ca: ChildApproval) -> None:
        """A sub-agent asks (or reports the end of) an approval: show it as ours, under an id of ours."""
        key = (ca.child_workflow_id, ca.approval.id)
        proxy = self.child_proxies.get(key)
        st, msg = self.current, self.current_msg
        if proxy is None:
            if ca.approval.status != "pending" or st is None or msg is None:
                return
            self.approval_count += 1
            unique = workflow.patched(APPROVAL_IDS_PATCH)
            # Decided here, so checked against this conversation's policy, not the child's.
            proxy = dataclasses.replace(
                ca.approval, turn_id=msg.id, call_id=None,
                id=approval_id(ca.child_workflow_id, ca.approval.id) if unique else f"a{self.approval_count}",
                approvers=None if msg.approvers is None else list(msg.approvers), admins=list(msg.admins),
            )
            self.child_proxies[key] = proxy
            self.proxy_targets[proxy.id] = key
            self.approvals[proxy.id] = proxy
            st.approvals.append(proxy)
            st.state, st.step = "awaiting_approval", f"waiting for approval of {proxy.tool}"
            self._bump(st, milestone=True)
            self._notify(DeliveryKind.APPROVAL_REQUESTED, msg, st, approval=proxy)
            await self._raise_to_parent(proxy)
        elif proxy.status == "pending" and ca.approval.status != "pending":
            proxy.status, proxy.decided_by, proxy.reason = (
                ca.approval.status, ca.approval.decided_by, ca.approval.reason)
            self._proxy_resolved(proxy)

    def _proxy_resolved(self, proxy: ApprovalInfo) -> None:
        st, msg = self.current, self.current_msg
        if st is None or msg is None or proxy not in st.approvals:
            return
        if not any(a.status == "pending" for a in st.approvals):
            st.state = "running"
        self._bump(st, milestone=True)
        self._notify(DeliveryKind.APPROVAL_DECIDED, msg, st, approval=proxy)
        if self.parent is not None:
            asyncio.create_task(self._raise_to_parent(proxy))

    async def _raise_to_parent(self, info: ApprovalInfo) -> None:
        if self.parent is not None:
            await workflow.get_external_workflow_handle(self.parent.workflow_id).signal(
                Signal.CHILD_APPROVAL.value, ChildApproval(workflow.info().workflow_id, info))

    async def _delegate(self, msg: UserMessage, st: TurnStatus, call: ToolCall, name: str) -> ToolResult:
        """Run a sub-agent on the task as a child workflow on its own task queue; its answer is the result."""
        sub = self.spec.subagent(name)
        if sub is None:
            return ToolResult(call_id=call.id, name=call.name, ok=False,
                              output=f"Error: delegation to {name!r} is not available at this depth")
        try:
            task = str(json.loads(call.arguments or "{}").get("task", "")).strip()
        except (ValueError, AttributeError):
            task = ""
        if not task:
            return ToolResult(call_id=call.id, name=call.name, ok=False, output="Error: give the sub-agent a task")
        st.tool_calls.append(call.name)
        st.step = f"delegating to {name}"
        self._bump(st)
        child_conv = f"{self.conv}/{msg.id}/{call.id}"
        link = ParentLink(
            workflow_id=workflow.info().workflow_id, source=name,
            stream=self.parent.stream if self.parent else stream_key(self.conv, msg.id),
        )
        child = ConversationInput(
            conversation_id=child_conv, spec=dataclasses.replace(sub, approval=self.spec.approval),
            pending=[UserMessage(id=call.id, text=task, user=msg.user, user_name=msg.user_name,
                                 approvers=msg.approvers, admins=list(msg.admins))],
            restored=True, parent=link,
        )
        try:
            carry = await workflow.execute_child_workflow(
                WORKFLOW, child, id=f"{sub.name}/{child_conv}", task_queue=sub.task_queue,
                result_type=Carry, execution_timeout=timedelta(seconds=sub.timeouts.run),
            )
        except ChildWorkflowError as err:
            if st.cancelled_by is not None:
                raise
            return ToolResult(call_id=call.id, name=call.name, ok=False,
                              output=f"The sub-agent {name!r} failed: {err.cause or err}")
        turn = carry.recent[-1] if carry.recent else None
        if turn is not None and turn.state == "finished":
            return ToolResult(call_id=call.id, name=call.name, output=turn.text or "")
        why = (turn.error or turn.state) if turn else "no answer"
        return ToolResult(call_id=call.id, name=call.name, ok=False, output=f"The sub-agent {name!r} did not answer: {why}")
