"""A tool allowed in the thread is allowed for the sub-agents of the thread's turns too: the child's
approval goes up to the parent, which answers it from its allowances at that moment. An allowance
given while a sub-agent's approval of the tool waits covers it; a revoke makes sub-agents ask again;
admin-only tools are never covered. The parent's and children's histories replay (the
``subagent-allowances`` patch); recorded with ``RECORD_HISTORIES=<label>`` like the others."""

from __future__ import annotations

import os
import uuid
from dataclasses import replace

from temporalio.worker import Replayer

from agent_core import Agent, AgentMode, ToolContext, timeouts_for, tool
from agent_core.worker import SANDBOXED_RUNNER
from agent_core.workflow import ConversationWorkflow
from tests.fakes.openai_server import Reply
from tests.helpers import wait_for_approval
from tests.runtime.replay_gate import save

RAN: list[str] = []


@tool(requires_approval=True)
async def lookup(topic: str, ctx: ToolContext) -> str:
    """Looks a fact up (guarded)."""
    RAN.append(topic)
    return f"fact about {topic}"


def script(body: dict) -> Reply:
    msgs = body["messages"]
    who, last = msgs[0]["content"], msgs[-1]
    if last["role"] == "tool":
        turn = msgs[max(i for i, m in enumerate(msgs) if m["role"] == "user"):]
        return Reply(text=f"{who}: " + ", ".join(m["content"] for m in turn if m["role"] == "tool"))
    task = last["content"].split()[-1]
    if who == "helper":
        return Reply(tool_calls=[("lookup", {"topic": f"sub {task}"})])
    if last["content"].startswith("both"):
        return Reply(tool_calls=[("lookup", {"topic": task}), ("ask_helper", {"task": f"find {task}"})])
    if last["content"].startswith("delegate"):
        return Reply(tool_calls=[("ask_helper", {"task": f"find {task}"})])
    return Reply(tool_calls=[("lookup", {"topic": task})])


async def pending(handle, count: int) -> list:
    seen = -1
    while True:
        st = await handle.progress(seen)
        seen = st.milestone
        waiting = [a for a in st.approvals if a.status == "pending"]
        if len(waiting) >= count:
            return waiting
        assert not st.done, f"the turn ended with {len(waiting)} approval(s) asked: {st}"


async def test_thread_allowances_reach_subagents(temporal_config, model, fake_openai):
    RAN.clear()
    fake_openai.script = script
    short = replace(timeouts_for(AgentMode.INTERACTIVE), idle=1.0)
    helper = Agent("helper", model=model, system_prompt="helper", tools=[lookup], timeouts=short,
                   temporal=replace(temporal_config, task_queue=temporal_config.task_queue + "-h"))
    lead = Agent("lead", model=model, system_prompt="lead", tools=[lookup], subagents=[helper], timeouts=short,
                 temporal=temporal_config)
    conv = f"sub-allow-{uuid.uuid4().hex[:6]}"
    async with lead:
        # Two calls wait at once, the lead's own and its sub-agent's: allowing the lead's for the thread
        # lets the sub-agent's run too.
        both = await lead.run_async("both planets", conversation_id=conv, user="U1", approvers=["requester"])
        waiting = await pending(both, 2)
        own = next(a for a in waiting if a.thread_scope)
        sub = next(a for a in waiting if not a.thread_scope)
        assert sub.tool == "lookup" and sub.arguments == '{"topic": "sub planets"}'
        await lead.decide(conv, own.id, True, by="U1", scope="thread")
        assert (await both.result(30)).text == "lead: fact about planets, helper: fact about sub planets"
        assert (await lead.get_approval(conv, sub.id)).decided_by == "U1"

        # Later turns: the sub-agent's call runs without asking.
        later = await lead.run_async("delegate moons", conversation_id=conv, user="U1", approvers=["requester"])
        assert (await later.result(30)).text == "lead: helper: fact about sub moons"
        assert (await later.status()).approvals == []
        assert sorted(RAN) == ["planets", "sub moons", "sub planets"]

        # Revoked in the thread: the sub-agent asks again.
        assert await lead.revoke(conv, "lookup", by="U2") is not None
        again = await lead.run_async("delegate stars", conversation_id=conv, user="U1", approvers=["requester"])
        asked = await wait_for_approval(again)
        assert "sub stars" not in RAN
        await lead.decide(conv, asked, True, by="U1")
        assert (await again.result(30)).text == "lead: helper: fact about sub stars"

        histories = []
        top = lead.client.get_workflow_handle(lead.workflow_id(conv))
        await top.result()  # idle end
        async for ex in lead.client.list_workflows("WorkflowType = 'DurabotConversation'"):
            if conv in ex.id:
                histories.append((ex.id, await lead.client.get_workflow_handle(ex.id, run_id=ex.run_id).fetch_history()))
    histories.sort(key=lambda pair: (not pair[0].startswith("lead/"), pair[0]))
    assert len(histories) == 4  # the lead and three helper children
    if os.environ.get("RECORD_HISTORIES"):
        for i, (_, history) in enumerate(histories):
            save(f"subagent_allowance_{i}", history)
    replayer = Replayer(workflows=[ConversationWorkflow], workflow_runner=SANDBOXED_RUNNER)
    for _, history in histories:
        await replayer.replay_workflow(history)


async def test_admin_only_tools_are_not_covered_for_subagents(temporal_config, model, fake_openai):
    """An allowance never covers a sub-agent's call of a tool that is admin-only in the sub-agent."""
    RAN.clear()
    fake_openai.script = script
    helper = Agent("helper", model=model, system_prompt="helper", tools=[lookup], admin_only=["lookup"],
                   temporal=replace(temporal_config, task_queue=temporal_config.task_queue + "-h"))
    lead = Agent("lead", model=model, system_prompt="lead", tools=[lookup], subagents=[helper],
                 temporal=temporal_config)
    conv = f"sub-admin-{uuid.uuid4().hex[:6]}"
    async with lead:
        first = await lead.run_async("look comets", conversation_id=conv, user="U1")
        await lead.decide(conv, await wait_for_approval(first), True, by="U1", scope="thread")
        await first.result(30)
        later = await lead.run_async("delegate comets", conversation_id=conv, user="U1")
        asked = await lead.get_approval(conv, await wait_for_approval(later))
        assert asked.tool == "lookup" and asked.admin_only and "sub comets" not in RAN
        await lead.decide(conv, asked.id, True, by="U1")
        assert (await later.result(30)).text == "lead: helper: fact about sub comets"
