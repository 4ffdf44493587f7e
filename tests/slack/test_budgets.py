"""Slack: budgets at the door. Two turns at a channel's budget edge: exactly one starts; the other is
answered with "ask an admin", whose click lets it run, also after an adapter restart."""

from __future__ import annotations

import asyncio
import json

from agent_core.profiles import load_profiles
from bots.core.budget_gate import scope_for
from tests.fakes.openai_server import Reply
from tests.slack.test_approvals_and_commands import ephemerals
from tests.slack.test_runs_visibility import command
from workers.example_tools import EXAMPLE_TOOLS

PROFILES = '''
[profiles.small]
tokens_per_channel_per_day = 1000
slack_channels = ["C2"]
'''


def refusal(h, channel, thread_ts):
    for m in h.fake.bot_messages(channel, thread_ts):
        for b in m.get("blocks") or []:
            if b.get("type") == "actions" and b["block_id"].startswith("durabot-budget-"):
                return m, b["elements"][0]
    return None


async def budget_click(h, message, button, user):
    from tests.fakes.slack_api import SlackSender

    payload = SlackSender.click_payload(button["action_id"], button["value"], user, message["channel"], message)
    status, _ = await h.sender.click(payload)
    assert status == 200


async def test_budget_edge_override_and_restart(start_slack, make_agent, fake_openai, tmp_path):
    fake_openai.script = lambda body: Reply(text="answer")
    path = tmp_path / "profiles.toml"
    path.write_text(PROFILES)
    agent = await make_agent(tools=EXAMPLE_TOOLS, profiles=load_profiles(str(path)))
    db = f"sqlite:///{tmp_path}/durabot.db"
    h = await start_slack(agent=agent, DURABOT_ADMINS="UADMIN", DURABOT_DATABASE_URL=db)
    seed = scope_for("slack:T1:C2:x", "U0", None, 1000)
    assert await agent.budgets.charge(seed, 999, "seed") == (999, 999)  # one token left today

    a = h.mention_event("first", user="U1", channel="C2")
    b = h.mention_event("second", user="U2", channel="C2")
    await asyncio.gather(h.sender.event(a), h.sender.event(b))
    held = await h.fake.wait_for(lambda: refusal(h, "C2", a["ts"]) or refusal(h, "C2", b["ts"]))
    ran, stopped = (b, a) if refusal(h, "C2", a["ts"]) else (a, b)
    await h.final_reply("C2", ran["ts"], "answer")
    assert refusal(h, "C2", ran["ts"]) is None  # exactly one ran
    message, button = held
    assert "this channel's token budget for today is used up" in json.dumps(message["blocks"])
    assert len([r for r in fake_openai.requests if r["messages"][-1]["content"].endswith(("first", "second"))]) == 1

    await budget_click(h, message, button, "U1")  # not an admin
    await h.fake.wait_for(lambda: ephemerals(h, "U1"))
    assert "Only admins" in ephemerals(h, "U1")[0]

    await h.adapter.stop()  # the adapter restarts; the held message is in the database
    h2 = await start_slack(agent=agent, DURABOT_ADMINS="UADMIN", DURABOT_DATABASE_URL=db)
    await budget_click(h2, message, button, "UADMIN")
    await h2.final_reply("C2", stopped["ts"], "answer")
    await budget_click(h2, message, button, "UADMIN")  # a second click changes nothing
    await h2.fake.wait_for(lambda: ephemerals(h2, "UADMIN"))
    assert "already let through" in ephemerals(h2, "UADMIN")[0]
    trail = await command(h2.sender, "audit", "UADMIN", "C2")
    rows = [line for line in trail.splitlines() if line.startswith("•")]
    assert len(rows) == 2 and "<@UADMIN> (uadmin) — budget_override" in rows[0] and "allowed past the budget" in rows[0]
    assert "<@U1> (u1) — budget_override" in rows[1] and "refused: not an admin" in rows[1]


async def test_usage_command(start_slack, fake_openai):
    fake_openai.script = lambda body: Reply(text="answer", usage=(30, 12))
    h = await start_slack(DURABOT_ADMINS="UADMIN")
    event = await h.mention("hello", user="U1", channel="C1")
    await h.final_reply("C1", event["ts"], "answer")
    mine = await command(h.sender, f"usage C1:{event['ts']}", "U1", "C1")
    assert f"thread `C1:{event['ts']}`: 42 tokens in 1 turn(s)" in mine
    assert "<#C1>: today 43 tokens in 1 turn(s)" in mine  # the round and the token the turn claimed
    assert "<@U1>: today 43 tokens in 1 turn(s)" in mine
    assert "Only admins" in await command(h.sender, "usage <@U1|u1>", "U2", "C1")
    theirs = await command(h.sender, "usage <@U1|u1> <#C1|general>", "UADMIN", "C5")
    assert "<@U1>: today 43 tokens" in theirs and "<#C1>: today 43 tokens" in theirs


async def test_a_held_message_keeps_its_files(start_slack, make_agent, fake_openai, tmp_path):
    """The files of a message held past its budget reach the model when an admin lets it run, also from a
    database written before holds kept files (the column is added)."""
    from sqlalchemy import create_engine, text

    from agent_core import LocalBlobStore
    from tests.fakes.openai_server import content_text
    from tests.slack.test_files import mention_with_files

    fake_openai.script = lambda body: Reply(text="read it")
    path = tmp_path / "profiles.toml"
    path.write_text(PROFILES)
    db = f"sqlite:///{tmp_path}/durabot.db"
    with create_engine(db).begin() as conn:  # the table as it was before holds kept files
        conn.execute(text("CREATE TABLE durabot_budget_holds (id VARCHAR(32) PRIMARY KEY, conversation_id "
                          "VARCHAR(300) NOT NULL, message_id VARCHAR(200) NOT NULL, user_id VARCHAR(64) NOT NULL, "
                          "user_name VARCHAR(200), text TEXT NOT NULL, meta TEXT NOT NULL, created DATETIME NOT NULL, "
                          "decided_by VARCHAR(64), decided_at DATETIME)"))
    agent = await make_agent(tools=EXAMPLE_TOOLS, profiles=load_profiles(str(path)),
                             blobs=LocalBlobStore(tmp_path / "blobs"))
    h = await start_slack(agent=agent, DURABOT_ADMINS="UADMIN", DURABOT_DATABASE_URL=db)
    await agent.budgets.charge(scope_for("slack:T1:C2:x", "U0", None, 1000), 1000, "seed")  # used up
    report = h.fake.add_file(b"host,errors\nweb-7,12\n", "errors.csv", "text/csv")
    event = mention_with_files(h, "what failed?", [report], channel="C2")
    assert (await h.sender.event(event))[0] == 200
    message, button = await h.fake.wait_for(lambda: refusal(h, "C2", event["ts"]))
    assert not fake_openai.requests

    await budget_click(h, message, button, "UADMIN")
    await h.final_reply("C2", event["ts"], "read it")
    user = [m for m in fake_openai.requests[-1]["messages"] if m["role"] == "user"][-1]["content"]
    assert "what failed?" in content_text(user) and "host,errors\nweb-7,12" in content_text(user)


async def test_a_held_message_keeps_the_threads_earlier_messages(start_slack, make_agent, fake_openai, tmp_path):
    """A mention inside an existing thread comes with the thread's earlier messages; held past its
    budget and let through by an admin, it still does."""
    fake_openai.script = lambda body: Reply(text="on fridays")
    path = tmp_path / "profiles.toml"
    path.write_text(PROFILES)
    agent = await make_agent(tools=EXAMPLE_TOOLS, profiles=load_profiles(str(path)))
    h = await start_slack(agent=agent, DURABOT_ADMINS="UADMIN", DURABOT_DATABASE_URL=f"sqlite:///{tmp_path}/d.db")
    await agent.budgets.charge(scope_for("slack:T1:C2:x", "U0", None, 1000), 1000, "seed")  # used up
    root = h.fake.add_user_message("C2", "we deploy on fridays", user="U7")
    event = await h.mention("when do we deploy?", channel="C2", thread_ts=root["ts"])
    message, button = await h.fake.wait_for(lambda: refusal(h, "C2", root["ts"]))
    assert not fake_openai.requests and event["ts"] != root["ts"]

    await budget_click(h, message, button, "UADMIN")
    await h.final_reply("C2", root["ts"], "on fridays")
    contents = [m.get("content") or "" for m in fake_openai.requests[-1]["messages"]]
    assert any("we deploy on fridays" in str(c) for c in contents), contents
    assert contents[-1] == "when do we deploy?"
