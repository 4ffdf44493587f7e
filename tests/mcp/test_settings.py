"""MCP servers configured from the environment reach the agent, its fingerprint and its approvals."""

from __future__ import annotations

import sys

from agent_core.settings import Settings
from workers.app import build_agent


async def test_mcp_servers_from_the_environment(temporal_server, task_queue):
    env = {
        "TEMPORAL_ADDRESS": temporal_server.address, "DURABOT_TASK_QUEUE": task_queue,
        "DURABOT_TOOLS": "workers.example_tools:get_time",
        "DURABOT_MCP_SERVERS": f"fake=stdio:{sys.executable} -m tests.fakes.mcp_server@approve=add",
    }
    agent = build_agent(Settings.load(env=env, dotenv=None))
    before = agent.fingerprint
    async with agent:
        tools = {t.name: t for t in agent.tools}
        assert {"get_time", "fake_add", "fake_write_note"} <= set(tools)
        assert tools["fake_add"].requires_approval and not tools["fake_write_note"].requires_approval
        assert "tool:fake_add" in agent.manifest and agent.fingerprint != before
        assert "fake_add" in agent.manifest["tools"]
