"""Sub-agents: delegation as child workflows on their own task queues, two levels deep, approvals
raised to the top conversation, cancellation reaching the grandchild."""

from __future__ import annotations

import asyncio
import uuid

from agent_core import Agent, RunCancelled, TextAccumulator, ToolContext, tool
from tests.fakes.openai_server import Reply

RAN: list[str] = []
STARTED = asyncio.Event()
CANCELLED = asyncio.Event()


@tool(requires_approval=True)
async def lookup_fact(topic: str, ctx: ToolContext) -> str:
    """Looks a fact up (guarded)."""
    RAN.append(topic)
    return f"fact about {topic}"


@tool
async def slow_fact(topic: str, ctx: ToolContext) -> str:
    """A slow lookup."""
    STARTED.set()
    try:
        while True:
            ctx.heartbeat()
            await asyncio.sleep(0.1)
    except asyncio.CancelledError:
        CANCELLED.set()
        raise


def script(body: dict) -> Reply:
    msgs = body["messages"]
    who = msgs[0]["content"]
    last = msgs[-1]
    if last["role"] == "tool":
        return Reply(text=f"{who} says: {last['content']}")
    task = last["content"]
    if who == "top":
        return Reply(tool_calls=[("ask_research", {"task": f"research {task}"})])
    if who == "research":
        return Reply(tool_calls=[("ask_facts", {"task": f"facts for {task}"})])
    tool_name = "slow_fact" if "slow" in task else "lookup_fact"
    return Reply(text="looking... ", tool_calls=[(tool_name, {"topic": task})])


async def build(temporal_config, model) -> Agent:
    def queue(name: str):
        from dataclasses import replace

        return replace(temporal_config, task_queue=f"{temporal_config.task_queue}-{name}")

    facts = Agent("facts", model=model, system_prompt="facts", tools=[lookup_fact, slow_fact], temporal=queue("f"))
    research = Agent("research", model=model, system_prompt="research", subagents=[facts], temporal=queue("r"))
    return Agent("top", model=model, system_prompt="top", subagents=[research], temporal=temporal_config)


async def test_delegation_two_levels_with_an_approval_at_the_bottom(temporal_config, model, fake_openai):
    RAN.clear()
    fake_openai.script = script
    top = await build(temporal_config, model)
    async with top:
        conv = f"deleg-{uuid.uuid4().hex[:6]}"
        acc, sources, approvals = TextAccumulator(), set(), []
        async for ev in top.stream("tides", conversation_id=conv, user="U1"):
            acc.feed(ev)
            if ev.source:
                sources.add((ev.source, ev.kind))
            if ev.kind == "approval_requested":
                approvals.append(ev.approval)
                assert ev.approval.tool == "lookup_fact" and ev.approval.requested_by == "U1"
                await top.decide(conv, ev.approval.id, True, by="U2")
        assert acc.text == "top says: research says: facts says: fact about facts for research tides"
        assert RAN == ["facts for research tides"] and len(approvals) == 1
        # the children's work shows in the top stream, marked with who did it
        assert ("facts", "tool_started") in sources and ("facts", "token") in sources
        assert ("research", "round_finished") in sources


async def test_cancelling_the_parent_cancels_the_children(temporal_config, model, fake_openai):
    STARTED.clear()
    CANCELLED.clear()
    fake_openai.script = script
    top = await build(temporal_config, model)
    async with top:
        conv = f"deleg-cancel-{uuid.uuid4().hex[:6]}"
        handle = await top.run_async("slow tides", conversation_id=conv)
        await asyncio.wait_for(STARTED.wait(), 20)
        await handle.cancel(by="admin")
        try:
            await handle.result(20)
            raise AssertionError("the run should have been cancelled")
        except RunCancelled:
            pass
        await asyncio.wait_for(CANCELLED.wait(), 20)  # the grandchild's tool heard of it
        statuses = {}
        async for ex in top.client.list_workflows("WorkflowType = 'DurabotConversation'"):
            statuses[ex.id] = ex.status.name
        children = {k: v for k, v in statuses.items() if conv in k and not k.startswith("top/")}
        assert len(children) == 2 and set(children.values()) == {"CANCELED"}, children
