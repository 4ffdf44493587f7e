"""Profiles: the file's checks, which profile a place gets, what a turn runs with, and pinning."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent_core import ToolContext, tool
from agent_core.errors import UserError
from agent_core.profiles import load_profiles
from tests.conftest import subprocess_env
from tests.fakes.openai_server import Reply
from tests.helpers import wait_for_approval
from workers.app import checked_profiles

OPS = '''
default = "general"

[profiles.general]
system_prompt = "You help everyone."

[profiles.ops]
system_prompt = "You are the ops assistant."
model = "ops-model"
tools = ["deploy", "status"]
approval = "all"
admin_only = ["deploy"]
max_iterations = 3
slack_workspaces = ["T1"]
discord_channels = ["555"]

[profiles.quiet]
tools = ["status"]
slack_channels = ["C9"]
'''


@tool(requires_approval=True)
async def deploy(service: str, ctx: ToolContext) -> str:
    """Deploy a service."""
    return f"deployed {service}"


@tool
async def status(service: str) -> str:
    """Service status."""
    return f"{service} is fine"


@tool
async def secret(service: str) -> str:
    """Not for every channel."""
    return "secret"


def write(tmp_path, text: str, name: str = "profiles.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_places_resolve_channel_then_workspace_then_default(tmp_path):
    profiles = load_profiles(write(tmp_path, OPS))
    assert profiles.resolve("slack", "T1", "C9").name == "quiet"  # the channel beats its workspace
    assert profiles.resolve("slack", "T1", "C1").name == "ops"
    assert profiles.resolve("discord", "777", "555").name == "ops"
    assert profiles.resolve("discord", "777", "556").name == "general"
    ops = profiles.get("ops")
    assert len(ops.version) == 12 and ops.version != profiles.get("general").version
    assert load_profiles(write(tmp_path, OPS, "again.toml")).get("ops").version == ops.version  # content, not path
    yaml = write(tmp_path, "profiles:\n  only:\n    tools: [status]\n    slack_channels: [C1]\n", "p.yaml")
    assert load_profiles(yaml).resolve("slack", "T", "C1").tools == ("status",)


@pytest.mark.parametrize("text, message", [
    ("[profiles.a\nx = 1", "not valid TOML"),
    ("[profiles.a]\ncolour = 'red'", "profile 'a': unknown key 'colour'"),
    ("[profiles.a]\nslack_channels = ['C1']\n[profiles.b]\nslack_channels = ['C1']",
     "slack channel 'C1' is in two profiles, 'a' and 'b'"),
    ("[profiles.a]\napproval = 'sometimes'", "approval 'sometimes' is not one of"),
    ("default = 'nope'\n[profiles.a]\n", "default profile 'nope' is not defined"),
    ("[profiles.a]\ntools = ['status', 'launch_missiles']", "profile 'a' names unknown tool 'launch_missiles'"),
])
def test_a_bad_file_is_refused_with_the_place(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UserError, match=message) as err:
        checked_profiles(path, [deploy, status], [])
    assert path in str(err.value) and "\n" not in str(err.value)


def test_profiles_check_command(tmp_path):
    good, bad = write(tmp_path, OPS), write(tmp_path, "[profiles.a]\ntools = ['nope']", "bad.toml")
    env = subprocess_env(DURABOT_TOOLS="tests.runtime.test_profiles")
    ok = subprocess.run([sys.executable, "-m", "workers.cli", "profiles", "check", good], env=env,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "3 profile(s), default general" in ok.stdout and "ops@" in ok.stdout and "slack workspace T1" in ok.stdout
    refused = subprocess.run([sys.executable, "-m", "workers.cli", "profiles", "check", bad], env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "profile 'a' names unknown tool 'nope'" in refused.stderr


def script(body: dict) -> Reply:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text=f"result: {last['content']}")
    if "deploy" in last["content"]:
        return Reply(tool_calls=[("deploy", {"service": "api"})])
    if "secret" in last["content"]:
        return Reply(tool_calls=[("secret", {"service": "api"})])
    return Reply(text="hello")


async def test_a_turn_runs_with_its_profile(make_agent, fake_openai, tmp_path):
    fake_openai.script = script
    profiles = load_profiles(write(tmp_path, OPS))
    agent = await make_agent(tools=[deploy, status, secret], profiles=profiles, system_prompt="base prompt")
    assert agent.manifest["profile:ops"] == profiles.get("ops").version  # in the fingerprint
    ref = profiles.get("ops").ref(agent.tools)
    assert ref.tools == ["deploy", "status"]
    handle = await agent.run_async("call secret", conversation_id="prof", profile=ref)
    result = await handle.result(30)
    assert "not available" in result.text or "unknown tool" in result.text
    body = fake_openai.requests[0]
    assert body["model"] == "ops-model" and body["messages"][0]["content"] == "You are the ops assistant."
    assert sorted(t["function"]["name"] for t in body["tools"]) == ["deploy", "status"]
    st = await agent.status("prof")
    assert st.profile == f"ops@{ref.version}"

    deploying = await agent.run_async("deploy now", conversation_id="prof", profile=ref)
    approval_id = await wait_for_approval(deploying)
    assert (await agent.get_approval("prof", approval_id)).thread_scope is False  # admin-only in this profile
    await agent.decide("prof", approval_id, True, by="U1")
    await deploying.result(30)
    fake_openai.requests.clear()
    plain = await agent.run("hi", conversation_id="plain")  # no profile: the agent's own configuration
    assert plain.text == "hello" and fake_openai.requests[0]["messages"][0]["content"] == "base prompt"
    assert fake_openai.requests[0]["model"] == "fake-model"


async def test_profile_pinned_for_the_turn_across_a_change(make_agent, fake_openai, tmp_path):
    """A profile changed while a turn runs applies from the conversation's next turn, never mid-turn."""
    fake_openai.script = script
    before = load_profiles(write(tmp_path, OPS))
    agent = await make_agent(tools=[deploy, status], profiles=before)
    first = await agent.run_async("deploy now", conversation_id="pin", profile=before.get("ops").ref(agent.tools))
    approval_id = await wait_for_approval(first)  # mid-turn: the first round is done, the second to come

    after = load_profiles(write(tmp_path, OPS.replace("You are the ops assistant.", "You are the NEW ops assistant."),
                                "changed.toml"))
    agent.profiles = after  # the file changed; the adapters pick profiles for new messages from it
    assert after.get("ops").version != before.get("ops").version
    second = await agent.run_async("hi again", conversation_id="pin", profile=after.get("ops").ref(agent.tools))
    await agent.decide("pin", approval_id, True, by="U1")
    await first.result(30)
    await second.result(30)
    prompts = [(b["messages"][0]["content"], b["messages"][-1].get("content")) for b in fake_openai.requests]
    assert prompts[0][0] == prompts[1][0] == "You are the ops assistant."  # both rounds of the first turn
    assert prompts[2] == ("You are the NEW ops assistant.", "hi again")
    assert (await agent.status("pin")).profile == f"ops@{after.get('ops').version}"
