"""A thread-wide allowance is conversation state: it survives continue-as-new and an idle end."""

from __future__ import annotations

from dataclasses import replace

from agent_core import AgentMode, ToolContext, timeouts_for, tool
from tests.fakes.openai_server import Reply
from tests.helpers import wait_for_approval

RAN: list[str] = []


@tool(requires_approval=True)
async def deploy(service: str, ctx: ToolContext) -> str:
    """Deploy."""
    RAN.append(service)
    return f"deployed {service}"


def script(body: dict) -> Reply:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text=last["content"])
    if last["content"].startswith("deploy"):
        return Reply(tool_calls=[("deploy", {"service": last["content"].split()[-1]})])
    return Reply(text="fine")


async def runs_of(agent, cid: str) -> list[str]:
    wid = agent.workflow_id(cid)
    return [ex.status.name async for ex in agent.client.list_workflows(f"WorkflowId = '{wid}'")]


async def test_allowance_survives_continue_as_new(make_agent, fake_openai):
    RAN.clear()
    fake_openai.script = script
    agent = await make_agent(tools=[deploy], max_history_events=30)
    handle = await agent.run_async("deploy api", conversation_id="can-allow", user="U1")
    await agent.decide("can-allow", await wait_for_approval(handle), True, by="U1", scope="thread")
    assert (await handle.result(30)).text == "deployed api"
    for i in range(3):  # each turn ends past 30 events: the run continues as new after it
        await agent.run(f"hello {i}", conversation_id="can-allow")
    assert (await runs_of(agent, "can-allow")).count("CONTINUED_AS_NEW") >= 2
    status = await agent.status("can-allow")
    assert [a.tool for a in status.allowances] == ["deploy"]
    assert (await agent.run("deploy web", conversation_id="can-allow", user="U1")).text == "deployed web"
    assert RAN == ["api", "web"]


async def test_allowance_survives_an_idle_end(make_agent, fake_openai):
    RAN.clear()
    fake_openai.script = script
    timeouts = replace(timeouts_for(AgentMode.INTERACTIVE), idle=0.5)
    agent = await make_agent(tools=[deploy], timeouts=timeouts)
    handle = await agent.run_async("deploy api", conversation_id="idle-allow", user="U1")
    await agent.decide("idle-allow", await wait_for_approval(handle), True, by="U1", scope="thread")
    await handle.result(30)
    await agent.handle("idle-allow").result()  # the run ends idle
    assert (await agent.run("deploy web", conversation_id="idle-allow", user="U1")).text == "deployed web"
    assert RAN == ["api", "web"]
