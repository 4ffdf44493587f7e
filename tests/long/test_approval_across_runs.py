"""An approval pending while the conversation continues as new keeps working, and is asked once."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.worker import Worker

from agent_core import ToolContext, tool
from agent_core.types import Delivery, DeliveryTarget
from tests.fakes.openai_server import Reply
from tests.helpers import wait_for_approval

RAN: list[str] = []


@tool(requires_approval=True)
async def deploy(service: str, ctx: ToolContext) -> str:
    """Deploy."""
    RAN.append(ctx.idempotency_key)
    return f"deployed {service}"


@tool
async def check(service: str) -> str:
    """Check."""
    return f"{service} healthy"


def script(body: dict) -> Reply:
    msgs = body["messages"]
    if msgs[-1]["role"] == "tool":
        return Reply(text="; ".join(m["content"] for m in msgs if m["role"] == "tool"))
    if "deploy" in msgs[-1]["content"]:
        return Reply(tool_calls=[("check", {"service": "api"}), ("deploy", {"service": "api"})])
    return Reply(text="fine")


async def run_statuses(agent, cid: str) -> list[str]:
    wid = agent.workflow_id(cid)
    return [ex.status.name async for ex in agent.client.list_workflows(f"WorkflowId = '{wid}'")]


async def test_pending_approval_survives_continue_as_new(make_agent, fake_openai, task_queue):
    RAN.clear()
    fake_openai.script = script
    deliveries: list[Delivery] = []

    @activity.defn(name="durabot.deliver")
    async def deliver(d: Delivery) -> None:
        deliveries.append(d)

    agent = await make_agent(tools=[check, deploy], max_history_events=30)
    async with Worker(agent.client, task_queue=f"{task_queue}-deliver", activities=[deliver]):
        target = DeliveryTarget(task_queue=f"{task_queue}-deliver", meta={"thread": "t1"})
        for i in range(2):  # grow the history past the threshold
            await agent.run(f"hello {i}", conversation_id="can-approval")
        handle = await agent.run_async("deploy api", conversation_id="can-approval", deliver_to=target,
                                       message_id="deploy-1")
        approval_id = await wait_for_approval(handle)
        for _ in range(200):  # the run pauses the turn and continues as new
            if "CONTINUED_AS_NEW" in await run_statuses(agent, "can-approval"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the run did not continue as new while the approval was pending")
        status = await agent.status("can-approval")
        assert status.current is not None and status.current.turn_id == "deploy-1"
        assert [a.status for a in status.current.approvals] == ["pending"]
        info = await agent.decide("can-approval", approval_id, True, by="boss")
        assert info.status == "approved"
        result = await handle.result(30)
        assert result.text == "api healthy; deployed api"
        assert len(RAN) == 1
        kinds = [d.kind for d in deliveries if d.turn_id == "deploy-1"]
        for _ in range(100):
            kinds = [d.kind for d in deliveries if d.turn_id == "deploy-1"]
            if "turn_finished" in kinds:
                break
            await asyncio.sleep(0.05)
        assert kinds == ["approval_requested", "approval_decided", "turn_finished"]  # the card once
        # the conversation goes on with its context in the new run
        fake_openai.script = lambda b: Reply(text=str(len([m for m in b["messages"] if m["role"] == "user"])))
        assert (await agent.run("how many?", conversation_id="can-approval")).text == "4"
