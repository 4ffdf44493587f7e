"""MCP tools in a running agent: called through the run_tool activity, gated by approvals, errors
reported to the model, over stdio and streamable HTTP."""

from __future__ import annotations

from agent_core.mcp import MCPServer, load_mcp_tools
from tests.fakes.openai_server import Reply
from tests.mcp.conftest import note_lines
from tests.runtime.test_approvals import wait_for_approval


def calls(name: str, args: dict):
    """A model that calls one tool, then answers with what the tool said."""

    def script(body: dict) -> Reply:
        last = body["messages"][-1]
        if last["role"] == "tool":
            return Reply(text=f"result: {last['content']}")
        return Reply(tool_calls=[(name, args)])

    return script


async def test_the_model_calls_an_mcp_tool(make_agent, fake_openai, stdio_server):
    fake_openai.script = calls("fake_add", {"a": 20, "b": 22})
    agent = await make_agent(tools=await load_mcp_tools([stdio_server()]))
    assert (await agent.run("add them", conversation_id="mcp-add")).text == "result: 42"
    offered = {t["function"]["name"] for t in fake_openai.requests[0]["tools"]}
    assert {"fake_add", "fake_write_note"} <= offered


async def test_an_approved_mcp_call_runs_once_after_approval(make_agent, fake_openai, stdio_server, notes):
    fake_openai.script = calls("fake_write_note", {"text": "ship it"})
    agent = await make_agent(tools=await load_mcp_tools([stdio_server(requires_approval=["write_note"])]))
    handle = await agent.run_async("note it", conversation_id="mcp-approve", user="U1")
    approval_id = await wait_for_approval(handle)
    assert note_lines(notes) == []  # not run while waiting
    await handle.approve(approval_id, by="U2")
    assert (await handle.result(30)).text == "result: noted: ship it"
    assert note_lines(notes) == ["ship it"]


async def test_a_denied_mcp_call_never_runs(make_agent, fake_openai, stdio_server, notes):
    fake_openai.script = calls("fake_write_note", {"text": "nope"})
    agent = await make_agent(tools=await load_mcp_tools([stdio_server(requires_approval=True)]))
    handle = await agent.run_async("note it", conversation_id="mcp-deny")
    approval_id = await wait_for_approval(handle)
    await handle.deny(approval_id, by="boss", reason="freeze")
    result = await handle.result(30)
    assert result.text == "result: The tool was not run: the call was denied by boss. Reason: freeze"
    assert note_lines(notes) == []


async def test_an_mcp_error_is_reported_to_the_model(make_agent, fake_openai, stdio_server):
    fake_openai.script = calls("fake_fail", {"reason": "quota exceeded"})
    agent = await make_agent(tools=await load_mcp_tools([stdio_server()]))
    result = await agent.run("try", conversation_id="mcp-error")
    assert result.text.startswith("result: Error: the tool 'fake_fail' failed")
    assert result.text.endswith("cannot comply: quota exceeded")


async def test_mcp_tools_over_streamable_http(make_agent, fake_openai, http_mcp):
    server = MCPServer("web", url=http_mcp.url, headers={"Authorization": "Bearer unused"},
                       requires_approval=["web_write_note"])
    tools = await load_mcp_tools([server])
    assert sorted(t.name for t in tools if t.requires_approval) == ["web_erase_notes", "web_write_note"]
    fake_openai.script = calls("web_add", {"a": 1, "b": 2})
    agent = await make_agent(tools=tools)
    assert (await agent.run("add", conversation_id="mcp-http")).text == "result: 3"
    fake_openai.script = calls("web_whoami", {})
    assert (await agent.run("who", conversation_id="mcp-http")).text == "result: Bearer unused"
