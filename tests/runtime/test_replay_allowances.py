"""Replay of a conversation that allows a tool for its thread, revokes it and is asked again (the
``thread-allowances`` patch). Recorded with ``RECORD_HISTORIES=<label>`` like the others."""

from __future__ import annotations

import os
from dataclasses import replace

from temporalio.worker import Replayer

from agent_core import AgentMode, timeouts_for
from agent_core.worker import SANDBOXED_RUNNER
from agent_core.workflow import ConversationWorkflow
from tests.helpers import wait_for_approval
from tests.runtime.test_replay import _save, guarded, plain, script


async def test_replay_of_thread_allowances(make_agent, fake_openai):
    fake_openai.script = script
    timeouts = replace(timeouts_for(AgentMode.INTERACTIVE), idle=1.0)
    agent = await make_agent(tools=[plain, guarded], timeouts=timeouts)
    h1 = await agent.run_async("use both", conversation_id="replay-allow")
    await agent.decide("replay-allow", await wait_for_approval(h1), True, by="tester", scope="thread")
    await h1.result(30)
    h2 = await agent.run_async("use both again", conversation_id="replay-allow")  # allowed: no approval
    assert (await h2.result(30)).text.endswith("plain 1, guarded 2")
    assert await agent.revoke("replay-allow", "guarded", by="tester") is not None
    h3 = await agent.run_async("use both once more", conversation_id="replay-allow")
    await agent.decide("replay-allow", await wait_for_approval(h3), False, by="tester")
    await h3.result(30)
    wf = agent.client.get_workflow_handle(agent.workflow_id("replay-allow"))
    await wf.result()  # idle end
    history = await wf.fetch_history()
    if os.environ.get("RECORD_HISTORIES"):
        _save("thread_allowance", history)
    await Replayer(workflows=[ConversationWorkflow], workflow_runner=SANDBOXED_RUNNER).replay_workflow(history)


async def test_replay_of_a_budget_stop(make_agent, fake_openai):
    """The ``budget-stop`` patch: a round that crosses the day's budget ends its turn."""
    from agent_core.types import BudgetScope
    from tests.fakes.openai_server import Reply

    def costly(body: dict) -> Reply:
        if body["messages"][-1]["role"] == "tool":
            return Reply(text="done")
        return Reply(text="calling", tool_calls=[("plain", {"x": 1})], usage=(300, 300))

    fake_openai.script = costly
    timeouts = replace(timeouts_for(AgentMode.INTERACTIVE), idle=1.0)
    agent = await make_agent(tools=[plain, guarded], timeouts=timeouts)
    budget = BudgetScope("slack:T1:U1", "slack:T1:C1", 500, None)
    result = await (await agent.run_async("go", conversation_id="replay-budget", budget=budget)).result(30)
    assert "Stopped here" in result.text
    wf = agent.client.get_workflow_handle(agent.workflow_id("replay-budget"))
    await wf.result()
    history = await wf.fetch_history()
    if os.environ.get("RECORD_HISTORIES"):
        _save("budget_stop", history)
    await Replayer(workflows=[ConversationWorkflow], workflow_runner=SANDBOXED_RUNNER).replay_workflow(history)
