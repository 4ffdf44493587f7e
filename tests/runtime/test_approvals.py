"""Approvals and cancellation: the workflow asks, waits, records one decision, and can be cancelled."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta

import pytest

from agent_core import ToolContext, tool, timeouts_for, AgentMode
from agent_core.errors import ApprovalAlreadyDecided, ApprovalError, ApprovalUnknown, RunCancelled
from tests.fakes.openai_server import Reply
from tests.helpers import wait_for_approval

RAN: list[str] = []


@tool(requires_approval=True)
async def deploy(service: str, ctx: ToolContext) -> str:
    """Deploy a service."""
    RAN.append(service)
    return f"deployed {service}"


def deploy_script(body: dict) -> Reply:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text=f"result: {last['content']}")
    return Reply(tool_calls=[("deploy", {"service": "api"})])


async def test_approve_runs_the_tool_and_records_who(make_agent, fake_openai):
    RAN.clear()
    fake_openai.script = deploy_script
    agent = await make_agent(tools=[deploy])
    handle = await agent.run_async("deploy api", conversation_id="approve", user="U1")
    approval_id = await wait_for_approval(handle)
    info = await handle.approve(approval_id, by="U2")
    assert (info.status, info.decided_by, info.requested_by) == ("approved", "U2", "U1")
    result = await handle.result(30)
    assert result.text == "result: deployed api" and RAN == ["api"]
    with pytest.raises(ApprovalAlreadyDecided, match="already approved by U2") as late:
        await handle.deny(approval_id, by="U3")
    assert (late.value.status, late.value.decided_by) == ("approved", "U2")  # typed, not parsed from text
    with pytest.raises(ApprovalUnknown):
        await handle.deny("a-no-such-approval", by="U3")
    assert issubclass(ApprovalUnknown, ApprovalError) and issubclass(ApprovalAlreadyDecided, ApprovalError)


async def test_deny_tells_the_model_and_never_runs_the_tool(make_agent, fake_openai):
    RAN.clear()
    fake_openai.script = deploy_script
    agent = await make_agent(tools=[deploy])
    events = []
    async for ev in agent.stream("deploy api", conversation_id="deny"):
        events.append(ev)
        if ev.kind == "approval_requested":
            await agent.decide("deny", ev.approval.id, approved=False, by="boss", reason="freeze")
    assert events[-1].text == "result: The tool was not run: the call was denied by boss. Reason: freeze"
    assert RAN == []
    decided = [e for e in events if e.kind == "approval_decided"]
    assert len(decided) == 1 and decided[0].approval.status == "denied"


async def test_unknown_approval_is_refused(make_agent):
    agent = await make_agent()
    await agent.run("hello", conversation_id="noapproval")
    with pytest.raises(ApprovalError, match="no approval 'a9'"):
        await agent.decide("noapproval", "a9", True, by="x")


async def test_policy_none_runs_marked_tools_without_asking(make_agent, fake_openai):
    RAN.clear()
    fake_openai.script = deploy_script
    agent = await make_agent(tools=[deploy], approval="none")
    assert (await agent.run("go", conversation_id="nopolicy")).text == "result: deployed api"


async def test_policy_all_asks_for_every_tool(make_agent, fake_openai):
    @tool
    async def harmless() -> str:
        """Harmless."""
        return "ok"

    fake_openai.script = lambda b: (Reply(text="fin") if b["messages"][-1]["role"] == "tool"
                                    else Reply(tool_calls=[("harmless", {})]))
    strict = await make_agent(name="strict", tools=[harmless], approval="all")
    handle = await strict.run_async("go", conversation_id="allpolicy")
    await wait_for_approval(handle)
    await handle.approve(by="me")
    assert (await handle.result(30)).text == "fin"


async def test_cancel_stops_a_running_tool_and_the_conversation_goes_on(make_agent, fake_openai):
    started, cancelled = asyncio.Event(), asyncio.Event()

    @tool
    async def long_job(ctx: ToolContext) -> str:
        """Runs for a long time, heartbeating."""
        started.set()
        try:
            for _ in range(600):
                ctx.heartbeat()
                await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "finished"

    fake_openai.script = lambda b: (Reply(text="after tool") if b["messages"][-1]["role"] == "tool"
                                    else Reply(tool_calls=[("long_job", {})]))
    timeouts = replace(timeouts_for(AgentMode.INTERACTIVE), heartbeat=1.0)
    agent = await make_agent(tools=[long_job], timeouts=timeouts)
    handle = await agent.run_async("start the job", conversation_id="cancel")
    await asyncio.wait_for(started.wait(), 10)
    await handle.cancel(by="admin")
    with pytest.raises(RunCancelled, match="cancelled by admin"):
        await handle.result(10)
    await asyncio.wait_for(cancelled.wait(), 10)  # the tool learnt of it through its heartbeat
    fake_openai.script = lambda b: Reply(text=f"{len(b['messages'])} messages, last tool: "
                                         f"{[m for m in b['messages'] if m['role'] == 'tool'][-1]['content']}")
    result = await agent.run("still there?", conversation_id="cancel")
    assert result.text == "4 messages, last tool: Not run: the request was cancelled."


async def test_cancel_while_waiting_for_approval(make_agent, fake_openai):
    fake_openai.script = deploy_script
    agent = await make_agent(tools=[deploy])
    handle = await agent.run_async("deploy", conversation_id="cancel-approval")
    approval_id = await wait_for_approval(handle)
    await agent.cancel("cancel-approval", by="admin")
    with pytest.raises(RunCancelled):
        await handle.result(10)
    with pytest.raises(ApprovalError, match="already cancelled"):
        await handle.approve(approval_id, by="late")


async def test_approval_timeout_on_the_time_skipping_server(fake_openai, model, task_queue):
    from temporalio.testing import WorkflowEnvironment

    from agent_core import Agent

    RAN.clear()
    fake_openai.script = deploy_script
    from workers.servers import find_binary

    path = find_binary("temporal-test-server")  # beside the interpreter, also from another checkout
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=path)
    try:
        agent = Agent("skipper", model=model, tools=[deploy], temporal_client=(env.client, task_queue))
        async with agent:
            with env.auto_time_skipping_disabled():
                handle = await agent.run_async("deploy", conversation_id="expire")
                await wait_for_approval(handle)
            await env.sleep(timedelta(hours=2))  # past the one-hour interactive approval timeout
            result = await handle.result(30)
        assert result.text == "result: The tool was not run: the call was not approved in time."
        assert result.approvals[0].status == "expired" and RAN == []
    finally:
        await env.shutdown()


async def test_the_workflow_refuses_a_decider_its_recorded_policy_does_not_allow(make_agent, fake_openai):
    from temporalio.client import WorkflowUpdateFailedError

    from agent_core.errors import ApprovalNotAllowed
    from agent_core.types import ApprovalInfo, Decision

    RAN.clear()
    fake_openai.script = deploy_script
    agent = await make_agent(tools=[deploy])
    policy = dict(user="U1", approvers=["requester", "U7"], admins=["UADM"])
    handle = await agent.run_async("deploy api", conversation_id="policy", **policy)
    approval_id = await wait_for_approval(handle)
    with pytest.raises(ApprovalNotAllowed, match="'U2' may not decide") as refused:
        await handle.approve(approval_id, by="U2")
    assert refused.value.requested_by == "U1"
    # Straight to the workflow, bypassing the SDK: its own validator refuses, whatever the caller claims.
    wf = agent.client.get_workflow_handle(agent.workflow_id("policy"))
    with pytest.raises(WorkflowUpdateFailedError) as direct:
        await wf.execute_update("decide", Decision(approval_id, True, "U2"), result_type=ApprovalInfo)
    assert direct.value.cause.type == "ApprovalNotAllowed"
    assert [a.status for a in await handle.pending_approvals()] == ["pending"]
    # A caller that verified U2 as an admin of the workspace (or an operator) may.
    info = await handle.approve(approval_id, by="U2", admin=True)
    assert (info.status, info.decided_by, info.approvers, info.admins) == (
        "approved", "U2", ["requester", "U7"], ["UADM"])
    assert (await handle.result(30)).text == "result: deployed api"

    for decider in ("U7", "UADM", "U1"):  # a listed approver, a listed admin, the requester
        handle = await agent.run_async("deploy api", conversation_id="policy", **policy)
        approval_id = await wait_for_approval(handle)
        with pytest.raises(ApprovalNotAllowed):
            await handle.deny(approval_id, by="U9")
        assert (await handle.deny(approval_id, by=decider)).decided_by == decider
        await handle.result(30)


async def test_no_policy_lets_anyone_decide_as_before(make_agent, fake_openai):
    fake_openai.script = deploy_script
    agent = await make_agent(tools=[deploy])
    handle = await agent.run_async("deploy api", conversation_id="nopolicy-decide", user="U1")
    info = await handle.deny(await wait_for_approval(handle), by="someone-else")
    assert (info.status, info.approvers) == ("denied", None)


async def test_ids_never_repeat_when_a_run_starts_without_the_previous_state(make_agent, fake_openai):
    fake_openai.script = deploy_script
    agent = await make_agent(tools=[deploy])
    first = await agent.run_async("deploy api", conversation_id="fresh-ids", user="U1")
    old_id = await wait_for_approval(first)
    # The run ends with nothing to restore from (terminated), so the next message starts afresh.
    await agent.client.get_workflow_handle(agent.workflow_id("fresh-ids")).terminate("test")
    second = await agent.run_async("deploy api", conversation_id="fresh-ids", user="U1")
    new_id = await wait_for_approval(second)
    assert new_id != old_id and new_id.startswith("a") and len(new_id) <= 20
    with pytest.raises(ApprovalError, match="no approval"):
        await agent.decide("fresh-ids", old_id, True, by="U1")  # a stale card's button
    assert [a.id for a in await second.pending_approvals()] == [new_id]


async def test_full_arguments_are_kept_for_the_approver(make_agent, fake_openai):
    long_service = "<&>" * 5000
    fake_openai.script = lambda b: (Reply(text="ok") if b["messages"][-1]["role"] == "tool"
                                    else Reply(tool_calls=[("deploy", {"service": long_service})]))
    agent = await make_agent(tools=[deploy])
    handle = await agent.run_async("deploy", conversation_id="long-args", user="U1")
    approval_id = await wait_for_approval(handle)
    info = await agent.get_approval("long-args", approval_id)
    assert info is not None and json.loads(info.arguments) == {"service": long_service}
    assert await agent.get_approval("long-args", "a-none") is None
    await handle.deny(approval_id)


async def test_an_approval_numbered_by_an_older_version_is_still_decidable(make_agent, fake_openai):
    """A turn paused for continue-as-new by an older version carries its pending ``a3`` into this one."""
    from agent_core.types import (
        ApprovalInfo,
        Carry,
        ChatMessage,
        ConversationInput,
        ToolCall,
        TurnCheckpoint,
        TurnStatus,
        UserMessage,
    )
    from agent_core.workflow import ConversationWorkflow

    RAN.clear()
    fake_openai.script = deploy_script
    agent = await make_agent(tools=[deploy])
    call = ToolCall(id="call_7", name="deploy", arguments='{"service": "legacy"}')
    pending = ApprovalInfo(id="a3", turn_id="m1", tool="deploy", arguments=call.arguments, requested_by="U1",
                           call_id=call.id)
    paused = TurnCheckpoint(
        message=UserMessage(id="m1", text="deploy legacy", user="U1"),
        status=TurnStatus(turn_id="m1", state="awaiting_approval", approvals=[pending]),
        round=0, calls=[call], results=[],
    )
    window = [ChatMessage(role="user", content="deploy legacy"), ChatMessage(role="assistant", tool_calls=[call])]
    resumed = ConversationInput(conversation_id="legacy", spec=agent.spec(), restored=True, resume=paused,
                                carry=Carry(window=window, next_seq=2))
    await agent.client.start_workflow(ConversationWorkflow.run, resumed, id=agent.workflow_id("legacy"),
                                      task_queue=agent.task_queue)
    handle = agent.get_run("legacy", "m1")
    assert await wait_for_approval(handle) == "a3"
    await handle.approve("a3", by="U2")  # no policy was recorded then: anyone, as before
    result = await handle.result(30)
    assert RAN == ["legacy"] and [a.id for a in result.approvals] == ["a3"]
