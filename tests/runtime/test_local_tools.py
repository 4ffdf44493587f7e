"""Tools named in ``local_tools`` run as local activities: inside the workflow task that asked for them,
so a tool call and the next model round cost one workflow task instead of two and no activity task.
Their guarantees: one run per call, the same idempotency key on every run, a cancel that takes effect
once the call returns, and a recorded history that replays."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.worker import Replayer

from agent_core import AgentMode, RunCancelled, ToolContext, timeouts_for, tool
from agent_core.contract import TOOL_ACTIVITY
from agent_core.worker import SANDBOXED_RUNNER
from agent_core.workflow import LEAN_TURNS_PATCH, ConversationWorkflow
from tests.fakes.openai_server import Reply
from tests.runtime.replay_gate import save as save_history

calls: list[str] = []


@tool
async def lookup(key: str, ctx: ToolContext) -> str:
    """Look a key up."""
    calls.append(f"lookup {key} {ctx.idempotency_key}")
    return f"value of {key}"


@tool
async def fetch(key: str, ctx: ToolContext) -> str:
    """Fetch a key (a regular activity)."""
    calls.append(f"fetch {key} {ctx.idempotency_key}")
    return f"fetched {key}"


def two_tools(body: dict) -> Reply:
    msgs = body["messages"]
    if msgs[-1]["role"] == "tool":
        return Reply(text="done: " + ", ".join(m["content"] for m in msgs if m["role"] == "tool"))
    if "both" in msgs[-1]["content"]:
        return Reply(tool_calls=[("lookup", {"key": "a"}), ("fetch", {"key": "b"})])
    return Reply(tool_calls=[("lookup", {"key": "c"})])


def _events(history, kind: int) -> list:
    return [e for e in history.events if e.event_type == kind]


def _tasks_of_turn(history, n: int) -> int:
    """Workflow tasks of the n-th turn (0-based), from the one that accepted its message to the one that
    completed it, leaving out any the idle timer caused."""
    events = list(history.events)
    accepted = [i for i, e in enumerate(events) if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED]
    completed = [i for i, e in enumerate(events) if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED]
    tasks = [i for i in range(accepted[n], completed[n])
             if events[i].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
             and events[i - 1].event_type != EventType.EVENT_TYPE_TIMER_FIRED]
    return 1 + len(tasks)


async def test_a_local_tool_runs_once_in_the_workflow_task(make_agent, fake_openai):
    calls.clear()
    fake_openai.script = two_tools
    agent = await make_agent(tools=[lookup, fetch], local_tools=["lookup"],
                             timeouts=replace(timeouts_for(AgentMode.INTERACTIVE), idle=1.0))
    result = await agent.run("use both", conversation_id="local-1")
    assert result.text == "done: value of a, fetched b"
    result = await agent.run("just the lookup", conversation_id="local-1")
    assert result.text.endswith("value of c")
    wf = agent.client.get_workflow_handle(agent.workflow_id("local-1"))
    await wf.result()  # idle end
    history = await wf.fetch_history()
    assert sorted(c.split()[0] for c in calls) == ["fetch", "lookup", "lookup"], calls  # each call once
    scheduled = [e.activity_task_scheduled_event_attributes.activity_type.name
                 for e in _events(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)]
    assert scheduled.count(TOOL_ACTIVITY) == 1  # fetch only: lookup never went through the server
    markers = [e.marker_recorded_event_attributes.marker_name for e in _events(history, EventType.EVENT_TYPE_MARKER_RECORDED)]
    # Two patch markers: lean-turns and inline-tools (offered, but this agent's in-memory store keeps no
    # round checkpoints, so its model rounds run no tool themselves: test_inline_tools.py).
    assert markers.count("core_local_activity") == 2 and markers.count("core_patch") == 2
    patch = [e for e in _events(history, EventType.EVENT_TYPE_MARKER_RECORDED)
             if e.marker_recorded_event_attributes.marker_name == "core_patch"][0]
    assert LEAN_TURNS_PATCH.encode() in patch.marker_recorded_event_attributes.details["patch-data"].payloads[0].data
    # The second turn: the task that took the message, then one for the tool round's answer (the local
    # tool and the next round go out in its completion) and one for the last round: three, not four.
    assert _tasks_of_turn(history, 1) == 3
    kinds = [e.event_type for e in history.events]
    # The idle timer starts once the conversation waits, not in the task that started the run.
    assert kinds.index(EventType.EVENT_TYPE_TIMER_STARTED) > kinds.index(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    if os.environ.get("RECORD_HISTORIES"):
        save_history("local_tools", history)
    await Replayer(workflows=[ConversationWorkflow], workflow_runner=SANDBOXED_RUNNER).replay_workflow(history)


async def test_cancel_during_a_local_tool_ends_the_turn_once_the_tool_returns(make_agent, fake_openai):
    started, release = asyncio.Event(), asyncio.Event()
    runs: list[str] = []

    @tool
    async def short_job(ctx: ToolContext) -> str:
        """A short job."""
        runs.append(ctx.idempotency_key)
        started.set()
        await asyncio.wait_for(release.wait(), 5)
        return "job done"

    fake_openai.script = lambda b: (Reply(text="after tool") if b["messages"][-1]["role"] == "tool"
                                    else Reply(tool_calls=[("short_job", {})]))
    agent = await make_agent(tools=[short_job], local_tools=["short_job"])
    handle = await agent.run_async("start the job", conversation_id="local-cancel")
    await asyncio.wait_for(started.wait(), 10)
    await handle.cancel(by="admin")
    release.set()  # the workflow task holding the call ends only now; the cancel follows it
    with pytest.raises(RunCancelled, match="cancelled by admin"):
        await handle.result(15)
    assert len(runs) == 1
    fake_openai.script = lambda b: Reply(text=" | ".join(f"{m['role']}:{m.get('content')}" for m in b["messages"][1:]))
    result = await agent.run("still there?", conversation_id="local-cancel")
    # The call had finished: its result stays in the transcript; the round after it never answered.
    assert "tool:job done" in result.text and "after tool" not in result.text, result.text


def test_local_tools_reach_the_workflow_from_the_option_and_the_environment():
    from agent_core import Agent
    from agent_core.options import ToolOptions
    from workers.app import build_agent
    from workers.settings import Settings

    agent = Agent("a", tools=[lookup, fetch], tool_options=ToolOptions(local_tools=["lookup", "lookup"]))
    assert {t.name: t.local for t in agent.spec().tools} == {"lookup": True, "fetch": False}
    settings = Settings.load(env={"DURABOT_LOCAL_TOOLS": "lookup, fetch", "DURABOT_TOOLS":
                                  "tests.runtime.test_local_tools"}, dotenv=None)
    assert settings.local_tools == ["lookup", "fetch"]
    built = build_agent(settings, local_worker=False)
    assert all(t.local for t in built.spec().tools)


async def test_an_unknown_local_tool_stops_start_up_with_its_name():
    from agent_core import Agent
    from agent_core.errors import UserError
    from agent_core.options import ToolOptions

    agent = Agent("a", tools=[lookup, fetch], tool_options=ToolOptions(local_tools=["lookup", "lookpu"]))
    with pytest.raises(UserError, match="'lookpu'.*its tools: fetch, lookup"):
        await agent.start()
