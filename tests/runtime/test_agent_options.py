"""Agent options come grouped (Limits, ToolOptions, Timeouts) and as the keywords they always were:
both build the same agent, to the spec the workflow gets and the configuration fingerprint."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from agent_core import Agent, AgentMode, ApprovalPolicy, Hooks, tool
from agent_core.errors import UserError
from agent_core.options import Limits, ToolOptions


@tool(requires_approval=True)
def deploy(service: str) -> str:
    """Deploy a service."""
    return f"deployed {service}"


class Named(Hooks):
    name = "named"


def test_old_keywords_and_grouped_options_build_the_same_agent():
    hooks = [Named()]
    old = Agent("a", tools=[deploy], approval="all", hooks=hooks, max_iterations=4, context_messages=30,
                context_chars=9_000, max_history_events=500, max_depth=1, mode=AgentMode.AUTONOMOUS)
    new = Agent("a", tools=[deploy], mode=AgentMode.AUTONOMOUS,
                limits=Limits(max_iterations=4, context_messages=30, context_chars=9_000,
                              max_history_events=500, max_depth=1),
                tool_options=ToolOptions(approval=ApprovalPolicy.ALL, hooks=hooks))
    assert old.spec() == new.spec()
    assert old.fingerprint == new.fingerprint and old.manifest == new.manifest
    assert old.spec().max_iterations == 4 and old.spec().approval is ApprovalPolicy.ALL
    assert (old.max_iterations, old.context_messages, old.max_depth) == (4, 30, 1)
    assert old.approval is ApprovalPolicy.ALL and old.hooks == hooks and old.mcp_servers == []


def test_defaults_are_those_of_before():
    agent = Agent("a")
    assert (agent.max_iterations, agent.context_messages, agent.context_chars) == (10, 100, None)
    assert agent.context_tokens == 8_000 - 1_000  # the demo model: an unknown window, less the answer's room
    assert (agent.max_history_events, agent.max_depth, agent.approval) == (10_000, 2, ApprovalPolicy.MARKED)


def test_a_group_and_one_of_its_fields_as_a_keyword_are_refused():
    with pytest.raises(UserError, match="max_iterations"):
        Agent("a", limits=Limits(), max_iterations=3)
    with pytest.raises(UserError, match="approval"):
        Agent("a", tool_options=ToolOptions(), approval="all")


def test_bad_values_and_unknown_keywords_say_so():
    with pytest.raises(UserError, match="max_iterations must be at least 1"):
        Agent("a", max_iterations=0)
    with pytest.raises(UserError, match="not one of marked, all, none"):
        Agent("a", approval="sometimes")
    with pytest.raises(TypeError, match="max_iteration"):
        Agent("a", max_iteration=3)


def test_run_handles_and_workers_do_not_import_the_agent():
    root = Path(__file__).resolve().parents[2] / "agent_core"
    for name in ("handle.py", "worker.py"):
        tree = ast.parse((root / name).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "agent" not in imported and "agent_core.agent" not in imported, name
