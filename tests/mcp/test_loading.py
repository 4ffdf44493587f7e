"""Loading MCP tools: names, schemas, approval flags, the fingerprint text, load-time errors, calls."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from agent_core import ToolContext, UserError
from agent_core.errors import AgentRuntimeError
from agent_core.fingerprint import build_manifest
from agent_core.mcp import MCPServer, MCPToolError, load_mcp_tools
from tests.mcp.conftest import SECRET, program


def ctx() -> ToolContext:
    return ToolContext(conversation_id="c", turn_id="t", call_id="k", idempotency_key="c/t/k")


async def test_stdio_tools_have_prefixed_names_schemas_and_approval(stdio_server):
    tools = await load_mcp_tools([stdio_server(requires_approval=["write_note"])])
    by_name = {t.name: t for t in tools}
    assert sorted(by_name) == ["fake_add", "fake_crash", "fake_erase_notes", "fake_fail", "fake_keyed_note",
                               "fake_pid", "fake_whoami", "fake_write_note"]
    add = by_name["fake_add"]
    assert add.description == "Add two integers."
    assert add.parameters["required"] == ["a", "b"]
    assert add.parameters["properties"]["a"]["type"] == "integer"
    assert by_name["fake_fail"].parameters["required"] == []  # the server omits it; the core needs it
    # write_note as configured; erase_notes because it declares itself destructive
    assert sorted(t.name for t in tools if t.requires_approval) == ["fake_erase_notes", "fake_write_note"]
    assert add.parse_arguments('{"a": 1, "b": 2}') == {"a": 1, "b": 2}
    with pytest.raises(ValueError, match="must be of type integer"):
        add.parse_arguments('{"a": "x", "b": 2}')


async def test_fingerprint_names_transport_and_program_but_no_secret(stdio_server, http_mcp):
    stdio = await load_mcp_tools([stdio_server()])
    http = await load_mcp_tools([MCPServer("web", url=http_mcp.url + "?key=q-secret",
                                           headers={"Authorization": "Bearer h-secret"})])
    text = {t.name: t.signature_text() for t in stdio + http}
    assert '"transport": "stdio"' in text["fake_add"] and program() in text["fake_add"]
    assert '"transport": "http"' in text["web_add"] and '"where": "127.0.0.1/mcp"' in text["web_add"]
    manifest = build_manifest(name="a", system_prompt="", model_identity="m", tools=stdio + http,
                              approval="marked", mode="interactive", max_iterations=1, context_messages=1)
    everything = repr(manifest) + "".join(text.values())
    for secret in (SECRET, "q-secret", "h-secret"):
        assert secret not in everything
    # The approval flag and the server's program are part of what client and worker must agree on.
    marked = await load_mcp_tools([stdio_server(requires_approval=True)])
    assert marked[0].signature_text() != stdio[0].signature_text()


async def test_calls_reach_the_server_and_return_text(stdio_server):
    tools = {t.name: t for t in await load_mcp_tools([stdio_server(prefix="")])}
    assert await tools["add"].invoke({"a": 2, "b": 3}, ctx()) == "5"
    assert await tools["whoami"].invoke({}, ctx()) == SECRET  # env reaches the server
    pid = await tools["pid"].invoke({}, ctx())
    assert await tools["pid"].invoke({}, ctx()) == pid  # calls share one connection (one process)
    with pytest.raises(MCPToolError, match="cannot comply: no reason"):
        await tools["fail"].invoke({"reason": "no reason"}, ctx())


async def test_a_dead_server_fails_one_call_and_the_next_call_reconnects(stdio_server):
    tools = {t.name: t for t in await load_mcp_tools([stdio_server()])}
    assert await tools["fake_add"].invoke({"a": 1, "b": 1}, ctx()) == "2"
    with pytest.raises(AgentRuntimeError, match="MCP server 'fake' .* failed during the call"):
        await tools["fake_crash"].invoke({}, ctx())
    assert await tools["fake_add"].invoke({"a": 2, "b": 2}, ctx()) == "4"


async def test_a_server_that_died_while_idle_is_replaced_before_the_call(stdio_server):
    tools = {t.name: t for t in await load_mcp_tools([stdio_server()])}
    pid = int(await tools["fake_pid"].invoke({}, ctx()))
    os.kill(pid, signal.SIGKILL)
    await _gone(pid)
    assert await tools["fake_add"].invoke({"a": 2, "b": 2}, ctx()) == "4"
    assert int(await tools["fake_pid"].invoke({}, ctx())) != pid


async def _gone(pid: int) -> None:
    status = Path(f"/proc/{pid}/status")
    for _ in range(500):
        if not status.exists() or "State:\tZ" in status.read_text():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"process {pid} still runs")


def test_names_are_sanitised_and_cut():
    server = MCPServer("my-srv", url="http://h/mcp")
    assert server.tool_name("read file.v2") == "my-srv_read_file_v2"
    assert len(server.tool_name("x" * 100)) == 64
    assert MCPServer("s", url="http://h/", prefix="").tool_name("a/b") == "a_b"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "bad name", "url": "http://h/"}, "must be letters, digits"),
    ({"name": "s"}, "either command"),
    ({"name": "s", "command": ["p"], "url": "http://h/"}, "either command"),
    ({"name": "s", "command": "prog --x"}, "non-empty list"),
    ({"name": "s", "url": "ftp://h/"}, "http:// or https://"),
    ({"name": "s", "url": "http://h/", "env": {"A": "1"}}, "use headers"),
    ({"name": "s", "url": "http://h/", "timeout": 0}, "timeout"),
])
def test_bad_server_configs_are_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        MCPServer(**kwargs)


async def test_a_missing_program_is_a_clear_user_error():
    with pytest.raises(UserError) as err:
        await load_mcp_tools([MCPServer("ghost", command=["no-such-mcp-server-xyz", "--flag"])])
    msg = str(err.value)
    assert "MCP server 'ghost' (stdio no-such-mcp-server-xyz)" in msg and "install it" in msg


async def test_a_server_that_exits_at_start_is_reported_with_its_stderr():
    script = "import sys; sys.stderr.write('fatal: MY_TOKEN is not set\\n'); sys.exit(2)"
    with pytest.raises(UserError) as err:
        await load_mcp_tools([MCPServer("broken", command=[sys.executable, "-c", script], timeout=20)])
    msg = str(err.value)
    assert "MCP server 'broken'" in msg and "fatal: MY_TOKEN is not set" in msg


async def test_an_unreachable_url_is_a_clear_user_error():
    import socket

    with socket.socket() as s:  # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/mcp"
        with pytest.raises(UserError, match=r"MCP server 'web' \(http 127.0.0.1/mcp\): cannot reach it"):
            await load_mcp_tools([MCPServer("web", url=url, timeout=10)])


async def test_approval_for_an_unknown_tool_name_is_refused(stdio_server):
    with pytest.raises(UserError, match="requires_approval names unknown tool.*'wirte_note'"):
        await load_mcp_tools([stdio_server(requires_approval=["wirte_note"])])


async def test_two_servers_with_the_same_prefix_clash(stdio_server, http_mcp):
    with pytest.raises(UserError, match=r"'x_add' is taken twice \(servers 'a' and 'b'\)"):
        await load_mcp_tools([stdio_server(name="a", prefix="x"), MCPServer("b", url=http_mcp.url, prefix="x")])
