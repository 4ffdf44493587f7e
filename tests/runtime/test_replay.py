"""Replay recorded histories against the current workflow code: non-determinism fails here first.

``tests/histories/*.json`` were recorded from real runs (tools, an approval, a cancel, a queued message,
an idle end). Regenerate with ``RECORD_HISTORIES=1`` only when a change is meant to be incompatible
(and then version the workflow instead of breaking running conversations)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from agent_core import AgentMode, ToolContext, timeouts_for, tool
from agent_core.worker import _RUNNER
from agent_core.workflow import ConversationWorkflow
from tests.fakes.openai_server import Reply

HISTORIES = Path(__file__).parent.parent / "histories"


@tool(requires_approval=True)
async def guarded(x: int, ctx: ToolContext) -> str:
    """Needs approval."""
    return f"guarded {x}"


@tool
async def plain(x: int) -> str:
    """Plain."""
    return f"plain {x}"


def script(body: dict) -> Reply:
    msgs = body["messages"]
    if msgs[-1]["role"] == "tool":
        return Reply(text="done: " + ", ".join(m["content"] for m in msgs if m["role"] == "tool"))
    text = msgs[-1]["content"]
    if "both" in text:
        return Reply(tool_calls=[("plain", {"x": 1}), ("guarded", {"x": 2})])
    return Reply(text=f"echo {text}")


async def record(agent, fake_openai) -> WorkflowHistory:
    fake_openai.script = script
    handle = await agent.run_async("use both", conversation_id="replay")
    approval = None
    while approval is None:
        st = await handle.progress((handle.last_status.milestone if handle.last_status else -1))
        approval = next((a.id for a in st.approvals if a.status == "pending"), None)
    await handle.approve(approval, by="tester")
    await handle.result(30)
    h2 = await agent.run_async("use both again", conversation_id="replay")
    while not any(a.status == "pending" for a in (await h2.status()).approvals):
        await asyncio.sleep(0.05)
    await h2.cancel(by="tester")
    h3 = await agent.run_async("plain talk", conversation_id="replay")
    await h3.result(30)
    wf = agent.client.get_workflow_handle(agent.workflow_id("replay"))
    await wf.result()  # idle end
    return await wf.fetch_history()


async def test_replay_of_a_fresh_history(make_agent, fake_openai):
    timeouts = replace(timeouts_for(AgentMode.INTERACTIVE), idle=1.0)
    agent = await make_agent(tools=[plain, guarded], timeouts=timeouts)
    history = await record(agent, fake_openai)
    if os.environ.get("RECORD_HISTORIES"):
        HISTORIES.mkdir(exist_ok=True)
        (HISTORIES / "tools_approval_cancel.json").write_text(history.to_json())
    await Replayer(workflows=[ConversationWorkflow], workflow_runner=_RUNNER).replay_workflow(history)


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_replay_of_recorded_histories(path: Path):
    history = WorkflowHistory.from_json("recorded", path.read_text())
    await Replayer(workflows=[ConversationWorkflow], workflow_runner=_RUNNER).replay_workflow(history)
