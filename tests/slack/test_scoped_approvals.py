"""Slack: Approve once / Always allow in this thread / Deny, the allowance in status, and revoke."""

from __future__ import annotations

import json

from tests.fakes.openai_server import Reply
from tests.slack.test_approvals_and_commands import card_of, click, ephemerals
from tests.slack.test_runs_visibility import command


def deploy_script(body):
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text=f"done: {last['content']}")
    return Reply(tool_calls=[("deploy", {"service": last["content"].split()[-1]})])


def allow_button(h, channel, thread_ts):
    for m in h.fake.bot_messages(channel, thread_ts):
        for b in m.get("blocks") or []:
            if b.get("type") == "actions" and b["block_id"].startswith("durabot-allow-"):
                return m, b["elements"][0]
    return None


async def test_always_allow_in_this_thread_then_revoke(start_slack, fake_openai):
    fake_openai.script = deploy_script
    h = await start_slack()
    event = await h.mention("deploy web", user="U1")
    thread = event["ts"]
    message, (approve, _deny) = await h.fake.wait_for(lambda: card_of(h, "C1", thread))
    assert approve["text"]["text"] == "Approve once"
    _, allow = await h.fake.wait_for(lambda: allow_button(h, "C1", thread))
    assert allow["text"]["text"] == "Always allow in this thread" and allow["action_id"].startswith("durabot:allow:")

    await click(h, message, allow, "U2")  # not the requester: refused like any decision
    await h.fake.wait_for(lambda: ephemerals(h, "U2"))
    await click(h, message, allow, "U1")
    await h.final_reply("C1", thread, "done: Deployed web")
    decided = json.dumps(h.fake.bot_messages("C1", thread)[1]["blocks"])
    assert "Approved by <@U1>" in decided and "allowed in this thread" in decided

    await h.mention("deploy api", user="U1", thread_ts=thread)  # no card this time
    await h.final_reply("C1", thread, "done: Deployed api")
    assert sum(1 for m in h.fake.bot_messages("C1", thread) if "Approval needed" in json.dumps(m.get("blocks"))) == 1

    short = f"C1:{thread}"
    status = await command(h.sender, f"status {short}", "U1", "C1")
    assert "Allowed in this thread: `deploy` (by <@U1>)" in status
    elsewhere = await command(h.sender, f"revoke deploy {short}", "U9", "C2")  # cannot see that channel
    assert "No conversation is open" in elsewhere
    assert "needs approval again" in await command(h.sender, f"revoke deploy {short}", "U3", "C1")
    assert "is not allowed" in await command(h.sender, f"revoke deploy {short}", "U3", "C1")
    assert "Say which tool" in await command(h.sender, "revoke deploy", "U3", "C1")
    assert "Allowed in this thread" not in await command(h.sender, f"status {short}", "U1", "C1")

    await h.mention("deploy db", user="U1", thread_ts=thread)  # asked again
    await h.fake.wait_for(lambda: card_of(h, "C1", thread))
