"""Slack: a profile's admins are admins in that profile's channels for /durabot's admin commands
(cancel, audit, others' usage) and for budget overrides, and nowhere else; members stay refused."""

from __future__ import annotations

from agent_core.profiles import load_profiles
from bots.core.budget_gate import scope_for
from tests.fakes.openai_server import Reply
from tests.slack.test_approvals_and_commands import card_of, ephemerals
from tests.slack.test_budgets import budget_click, refusal
from tests.slack.test_runs_visibility import command
from workers.example_tools import EXAMPLE_TOOLS

PROFILES = '''
default = "general"
[profiles.general]
[profiles.ops]
admins = ["ULEAD"]
slack_channels = ["C2"]
[profiles.ops_budget]
admins = ["ULEAD"]
tokens_per_channel_per_day = 100
slack_channels = ["C3"]
[profiles.tight]
tokens_per_channel_per_day = 100
slack_channels = ["C4"]
'''


def script(body):
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text=f"done: {last['content']}")
    if "deploy" in (last.get("content") or ""):
        return Reply(tool_calls=[("deploy", {"service": "web"})])
    return Reply(text="answer")


async def test_profile_admins_in_their_channels_only(start_slack, make_agent, fake_openai, tmp_path):
    fake_openai.script = script
    path = tmp_path / "profiles.toml"
    path.write_text(PROFILES)
    agent = await make_agent(tools=EXAMPLE_TOOLS, profiles=load_profiles(str(path)))
    h = await start_slack(agent=agent, DURABOT_ADMINS="UADMIN", DURABOT_DATABASE_URL=f"sqlite:///{tmp_path}/d.db")
    ops = await h.mention("deploy web", user="U1", channel="C2")
    other = await h.mention("deploy web", user="U1", channel="C1")
    await h.fake.wait_for(lambda: card_of(h, "C2", ops["ts"]) and card_of(h, "C1", other["ts"]))

    # cancel: the lead of C2's profile, in C2's conversation; not in C1's; a member nowhere
    assert "Only admins" in await command(h.sender, f"cancel C1:{other['ts']}", "ULEAD", "C1")
    assert "Only admins" in await command(h.sender, f"cancel C2:{ops['ts']}", "U1", "C2")
    assert "Cancelling" in await command(h.sender, f"cancel C2:{ops['ts']}", "ULEAD", "C2")
    await h.final_reply("C2", ops["ts"], "cancelled")
    assert (await agent.status(f"slack:T1:C1:{other['ts']}")).state == "awaiting_approval"

    # audit: the lead reads C2's trail (only C2's), not C1's; a member reads none
    trail = await command(h.sender, "audit", "ULEAD", "C2")
    rows = [line for line in trail.splitlines() if line.startswith("•")]
    assert len(rows) == 1 and "<@ULEAD> (ulead) — cancel" in rows[0], trail
    assert "Only admins" in await command(h.sender, "audit", "ULEAD", "C1")
    assert "Only admins" in await command(h.sender, "audit <#C1|general>", "ULEAD", "C2")
    assert "Only admins" in await command(h.sender, "audit", "U1", "C2")
    assert "<@ULEAD>" in await command(h.sender, "audit", "UADMIN", "C5")  # a workspace admin: everywhere

    # others' usage: the lead in C2 (a person looked up from there, C2 itself); not C1, not from C1
    assert "<@U1>: today" in await command(h.sender, "usage <@U1|u1>", "ULEAD", "C2")
    assert "<#C2>: today" in await command(h.sender, "usage <#C2|ops>", "ULEAD", "C1")
    assert "Only admins" in await command(h.sender, "usage <#C1|general>", "ULEAD", "C2")
    assert "Only admins" in await command(h.sender, "usage <@U1|u1>", "ULEAD", "C1")
    assert "Only admins" in await command(h.sender, "usage <@ULEAD|ulead>", "U1", "C2")

    # budget overrides: the lead lets C3's held message run (ops_budget is the lead's), not C4's
    for channel in ("C3", "C4"):
        await agent.budgets.charge(scope_for(f"slack:T1:{channel}:x", "U0", None, 100), 100, f"seed-{channel}")
    held_here = await h.mention("hello", user="U1", channel="C3")
    held_there = await h.mention("hello", user="U1", channel="C4")
    there, there_button = await h.fake.wait_for(lambda: refusal(h, "C4", held_there["ts"]))
    await budget_click(h, there, there_button, "ULEAD")
    await h.fake.wait_for(lambda: ephemerals(h, "ULEAD"))
    assert "Only admins" in ephemerals(h, "ULEAD")[0]
    here, here_button = await h.fake.wait_for(lambda: refusal(h, "C3", held_here["ts"]))
    await budget_click(h, here, here_button, "ULEAD")
    await h.final_reply("C3", held_here["ts"], "answer")
