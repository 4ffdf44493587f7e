"""Scoped approvals: "always allow in this thread" is conversation state; revoking asks again."""

from __future__ import annotations

import pytest

from agent_core import ToolContext, tool
from agent_core.errors import ApprovalError
from tests.fakes.openai_server import Reply
from tests.helpers import wait_for_approval

RAN: list[str] = []


@tool(requires_approval=True)
async def deploy(service: str, ctx: ToolContext) -> str:
    """Deploy a service."""
    RAN.append(service)
    return f"deployed {service}"


@tool(requires_approval=True)
async def drop_table(name: str) -> str:
    """Drop a table."""
    RAN.append(f"drop {name}")
    return f"dropped {name}"


def script(body: dict) -> Reply:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text=f"result: {last['content']}")
    service = last["content"].split()[-1]
    if last["content"].startswith("drop"):
        return Reply(tool_calls=[("drop_table", {"name": service})])
    return Reply(tool_calls=[("deploy", {"service": service})])


async def test_thread_allowance_skips_later_approvals_until_revoked(make_agent, fake_openai):
    RAN.clear()
    fake_openai.script = script
    agent = await make_agent(tools=[deploy])
    first = await agent.run_async("deploy api", conversation_id="scoped", user="U1", approvers=["requester"])
    approval_id = await wait_for_approval(first)
    info = await agent.get_approval("scoped", approval_id)
    assert info.thread_scope is True
    decided = await agent.decide("scoped", approval_id, True, by="U1", scope="thread")
    assert (decided.status, decided.scope) == ("approved", "thread")
    assert (await first.result(30)).text == "result: deployed api"

    # Other arguments, same tool: runs without asking.
    second = await agent.run_async("deploy web", conversation_id="scoped", user="U1", approvers=["requester"])
    done = await second.result(30)
    assert done.text == "result: deployed web" and RAN == ["api", "web"]
    status = await agent.status("scoped")
    assert [(a.tool, a.by, a.approval_id) for a in status.allowances] == [("deploy", "U1", approval_id)]

    revoked = await agent.revoke("scoped", "deploy", by="U2")
    assert revoked is not None and revoked.tool == "deploy"
    assert await agent.revoke("scoped", "deploy", by="U2") is None  # nothing left to revoke
    assert (await agent.status("scoped")).allowances == []

    third = await agent.run_async("deploy db", conversation_id="scoped", user="U1", approvers=["requester"])
    again = await wait_for_approval(third)  # asked again
    assert RAN == ["api", "web"]
    await agent.decide("scoped", again, True, by="U1")
    assert (await third.result(30)).text == "result: deployed db"
    assert (await agent.status("scoped")).allowances == []  # approved once: no allowance


async def test_admin_only_tool_never_offers_the_thread_scope(make_agent, fake_openai):
    RAN.clear()
    fake_openai.script = script
    agent = await make_agent(tools=[deploy, drop_table], admin_only=["drop_table"])
    handle = await agent.run_async("drop users", conversation_id="adminonly", user="U1")
    approval_id = await wait_for_approval(handle)
    assert (await agent.get_approval("adminonly", approval_id)).thread_scope is False
    with pytest.raises(ApprovalError, match="cannot be allowed for the whole thread"):
        await agent.decide("adminonly", approval_id, True, by="U1", scope="thread")
    assert (await agent.get_approval("adminonly", approval_id)).status == "pending"  # nothing recorded
    await agent.decide("adminonly", approval_id, True, by="U1")
    await handle.result(30)
    assert (await agent.status("adminonly")).allowances == []
    assert agent.spec().tool("drop_table").admin_only and "admin_only" in agent.manifest


async def test_an_old_adapter_without_a_scope_approves_once(make_agent, fake_openai):
    """A decide update without the scope field (an adapter of the previous version) approves once."""
    from agent_core.contract import Update
    from agent_core.types import ApprovalInfo

    RAN.clear()
    fake_openai.script = script
    agent = await make_agent(tools=[deploy])
    handle = await agent.run_async("deploy api", conversation_id="oldadapter", user="U1")
    approval_id = await wait_for_approval(handle)
    old_payload = {"approval_id": approval_id, "approved": True, "by": "U1", "reason": None, "admin": False}
    info = await agent.handle("oldadapter").execute_update(Update.DECIDE.value, old_payload, result_type=ApprovalInfo)
    assert (info.status, info.scope) == ("approved", "once")
    await handle.result(30)
    assert (await agent.status("oldadapter")).allowances == []
