"""Sub-agents, as part of the conversation workflow: delegating a task to a child workflow on the
sub-agent's task queue. Workflow code: deterministic, no I/O. The approvals children raise to their
parent are the approval gate's (approvals.py).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from .contract import WORKFLOW
    from .events import stream_key
    from .types import (
        AgentSpec,
        Carry,
        ConversationInput,
        ParentLink,
        ToolCall,
        ToolResult,
        TurnStatus,
        UserMessage,
    )


async def delegate(
    spec: AgentSpec, conv: str, parent: ParentLink | None, msg: UserMessage, st: TurnStatus, call: ToolCall,
    name: str,
) -> ToolResult:
    """Run sub-agent ``name`` on the task of ``call`` as a child workflow on its own task queue; its
    answer is the result. ``spec``, ``conv`` and ``parent``: the delegating conversation's."""
    sub = spec.subagent(name)
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
    st.bump()
    child_conv = f"{conv}/{msg.id}/{call.id}"
    link = ParentLink(
        workflow_id=workflow.info().workflow_id, source=name,
        stream=parent.stream if parent else stream_key(conv, msg.id),
    )
    # The sub-agent runs in the mode of the delegating turn's profile (its timeouts), like the turn.
    sub = dataclasses.replace(sub, approval=spec.approval).for_turn(msg.profile)
    child = ConversationInput(
        conversation_id=child_conv, spec=sub,
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
