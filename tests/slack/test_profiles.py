"""Slack: a channel's profile picks the prompt, tools and approvers of its turns; status shows it."""

from __future__ import annotations

from agent_core.profiles import load_profiles
from tests.fakes.openai_server import Reply
from tests.slack.test_approvals_and_commands import card_of, click, ephemerals
from tests.slack.test_runs_visibility import command
from workers.example_tools import EXAMPLE_TOOLS

PROFILES = '''
default = "general"
[profiles.general]
system_prompt = "general prompt"
[profiles.ops]
system_prompt = "ops prompt"
approvers = ["UOPS"]
slack_channels = ["C2"]
'''


def script(body):
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text=f"done: {last['content']}")
    return Reply(tool_calls=[("deploy", {"service": "web"})])


async def test_channel_profile_in_slack(start_slack, make_agent, fake_openai, tmp_path):
    fake_openai.script = script
    path = tmp_path / "profiles.toml"
    path.write_text(PROFILES)
    profiles = load_profiles(str(path))
    agent = await make_agent(tools=EXAMPLE_TOOLS, profiles=profiles)
    h = await start_slack(agent=agent)
    event = await h.mention("deploy web", user="U1", channel="C2")
    message, (approve, _) = await h.fake.wait_for(lambda: card_of(h, "C2", event["ts"]))
    assert fake_openai.requests[0]["messages"][0]["content"] == "ops prompt"
    await click(h, message, approve, "U1")  # the profile's approvers, not the requester
    await h.fake.wait_for(lambda: ephemerals(h, "U1"))
    await click(h, message, approve, "UOPS")
    await h.final_reply("C2", event["ts"], "done: Deployed web")
    status = await command(h.sender, f"status C2:{event['ts']}", "U1", "C2")
    assert f"Profile: `ops@{profiles.get('ops').version}`" in status

    other = await h.mention("deploy web", user="U1", channel="C1")
    await h.fake.wait_for(lambda: card_of(h, "C1", other["ts"]))
    assert fake_openai.requests[-1]["messages"][0]["content"] == "general prompt"
