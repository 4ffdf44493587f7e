"""What durabot adds to an MCP call for safety: the idempotency key in ``_meta``, approval for tools
that declare themselves destructive, and no credentials of a server's URL or headers in what it shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_core import ToolContext, UserError
from agent_core.mcp import IDEMPOTENCY_META_KEY, MCPServer, load_mcp_tools, parse_mcp_env
from tests.helpers import wait_for_approval
from tests.mcp.conftest import note_lines
from tests.mcp.test_agent import calls


def ctx(key: str) -> ToolContext:
    return ToolContext(conversation_id="c", turn_id="t", call_id="k", idempotency_key=key)


async def test_the_idempotency_key_reaches_the_server_in_meta(stdio_server, notes):
    assert IDEMPOTENCY_META_KEY == "durabot/idempotency_key"
    tools = {t.name: t for t in await load_mcp_tools([stdio_server()])}
    assert await tools["fake_keyed_note"].invoke({"text": "one"}, ctx("conv:m1:call_1")) == "conv:m1:call_1"
    # a retry of the same call sends the same key: the server can tell it has done this already
    assert await tools["fake_keyed_note"].invoke({"text": "one"}, ctx("conv:m1:call_1")) == "conv:m1:call_1"
    assert note_lines(notes) == ["conv:m1:call_1 one", "conv:m1:call_1 one"]


async def test_an_agent_tool_call_sends_its_idempotency_key_over_http(make_agent, fake_openai, http_mcp):
    fake_openai.script = calls("web_keyed_note", {"text": "hello"})
    agent = await make_agent(tools=await load_mcp_tools([MCPServer("web", url=http_mcp.url)]))
    result = await agent.run("note it", conversation_id="mcp-key")
    key = result.text.removeprefix("result: ")
    conversation, message, call = key.split(":")
    assert conversation.endswith("mcp-key") and message and call  # the workflow's key of this call
    assert f"{key} hello" in note_lines(Path(http_mcp.notes_path))


async def test_a_destructive_tool_waits_for_approval_by_default(make_agent, fake_openai, stdio_server, notes):
    notes.write_text("keep me\n")
    fake_openai.script = calls("fake_erase_notes", {})
    agent = await make_agent(tools=await load_mcp_tools([stdio_server()]))
    handle = await agent.run_async("erase", conversation_id="mcp-destructive", user="U1")
    approval_id = await wait_for_approval(handle)
    assert note_lines(notes) == ["keep me"]  # nothing erased while waiting
    await handle.approve(approval_id, by="U2")
    assert (await handle.result(30)).text == "result: erased"
    assert note_lines(notes) == []


async def test_a_server_trusted_with_destructive_tools_runs_them_without_approval(
        make_agent, fake_openai, stdio_server, notes):
    notes.write_text("scratch\n")
    tools = await load_mcp_tools([stdio_server(trust_destructive=True)])
    assert not any(t.requires_approval for t in tools)
    fake_openai.script = calls("fake_erase_notes", {})
    agent = await make_agent(tools=tools)
    assert (await agent.run("erase", conversation_id="mcp-trusted")).text == "result: erased"
    assert note_lines(notes) == []


async def test_trust_is_in_the_fingerprint(stdio_server):
    (guarded,) = [t for t in await load_mcp_tools([stdio_server()]) if t.name == "fake_erase_notes"]
    (trusted,) = [t for t in await load_mcp_tools([stdio_server(trust_destructive=True)])
                  if t.name == "fake_erase_notes"]
    assert '"destructive": true' in guarded.signature_text()
    assert guarded.signature_text() != trusted.signature_text()


def test_the_environment_marker_trusts_destructive_tools():
    servers = parse_mcp_env("a=stdio:prog@approve=write@trust-destructive;"
                            "b=http://u@h/mcp@trust-destructive; c=stdio:prog@trust-destructive@approve")
    assert [(s.requires_approval, s.trust_destructive) for s in servers] == [
        (["write"], True), (False, True), (True, True)]
    assert servers[1].url == "http://u@h/mcp"
    with pytest.raises(UserError, match="@trust-destructive is given twice"):
        parse_mcp_env("a=stdio:prog@trust-destructive@trust-destructive")


def test_url_credentials_and_headers_are_not_shown():
    server = MCPServer("web", url="https://bob:hunter2@mcp.example/mcp?token=t0ken",
                       headers={"Authorization": "Bearer h3ader"})
    shown = repr(server) + server.where()
    for secret in ("hunter2", "bob", "t0ken", "h3ader"):
        assert secret not in shown
    assert "https://***@mcp.example/mcp?token=***" in repr(server)
    with pytest.raises(UserError) as err:
        parse_mcp_env("web=https://bob:hunter2@mcp.example/mcp@approve=")
    assert "hunter2" not in str(err.value) and "***@mcp.example" in str(err.value)
