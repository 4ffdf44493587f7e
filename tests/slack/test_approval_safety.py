"""Approvals that cannot be misdirected or silently lost: ids that never repeat, the workflow's own
check of the decider, and cards that fit Slack's limits however their arguments are escaped."""

from __future__ import annotations

import html
import json

from tests.fakes.openai_server import Reply
from tests.fakes.slack_api import SlackSender
from tests.slack.test_approvals_and_commands import card_of, click, ephemerals

BIG = "<&>" * 3334  # 10,002 characters; escaped for Slack, 43,342


def deploy_script(version: str = "v1"):
    def script(body):
        last = body["messages"][-1]
        if last["role"] == "tool":
            return Reply(text=f"done: {last['content'][:40]}")
        return Reply(tool_calls=[("deploy", {"service": "web", "version": version})])
    return script


def cards(h, channel, thread_ts):
    """Every card of the thread that still has buttons, oldest first: (message, elements)."""
    out = []
    for m in h.fake.bot_messages(channel, thread_ts):
        for b in m.get("blocks") or []:
            if b.get("type") == "actions":
                out.append((m, b["elements"]))
    return out


async def test_a_stale_button_from_a_previous_run_cannot_decide_a_new_approval(start_slack, fake_openai):
    fake_openai.script = deploy_script()
    h = await start_slack()
    event = await h.mention("deploy web", user="U1")
    conv = f"slack:T1:C1:{event['ts']}"
    old_card, (old_approve, _) = await h.fake.wait_for(lambda: card_of(h, "C1", event["ts"]))
    # The run ends without a decision and without a result to restore from (an operator terminated it).
    await h.agent.client.get_workflow_handle(h.agent.workflow_id(conv)).terminate("test")
    await h.mention("deploy web again", user="U1", thread_ts=event["ts"])
    await h.fake.wait_for(lambda: len(cards(h, "C1", event["ts"])) == 2)

    await click(h, old_card, old_approve, "U1")  # the first card's button, still on screen
    await h.fake.wait_for(lambda: ephemerals(h, "U1"))
    assert "no longer open" in ephemerals(h, "U1")[0]
    status = await h.agent.status(conv)
    assert status.state == "awaiting_approval"
    assert [a.status for a in status.current.approvals] == ["pending"]


async def test_a_forged_button_does_not_make_the_clicker_the_requester(start_slack, fake_openai):
    fake_openai.script = deploy_script()
    h = await start_slack()
    event = await h.mention("deploy web", user="U1")
    message, (approve, _) = await h.fake.wait_for(lambda: card_of(h, "C1", event["ts"]))
    conv, approval_id, requester = approve["value"].split("|")
    assert requester == "U1"
    forged = SlackSender.click_payload(approve["action_id"], f"{conv}|{approval_id}|U2", "U2", "C1", message)
    assert (await h.sender.click(forged))[0] == 200
    await h.fake.wait_for(lambda: ephemerals(h, "U2"))
    assert "cannot decide" in ephemerals(h, "U2")[0] and "<@U1>" in ephemerals(h, "U2")[0]
    assert (await h.agent.status(conv)).state == "awaiting_approval"


async def test_escaped_arguments_make_a_valid_card_and_show_all_opens_them_whole(start_slack, fake_openai):
    fake_openai.script = deploy_script(BIG)
    h = await start_slack()
    event = await h.mention("deploy web", user="U1")
    message, (approve, _, show) = await h.fake.wait_for(lambda: card_of(h, "C1", event["ts"]), 15)
    posts = [c for c in h.fake.calls if c.method == "chat.postMessage" and c.params.get("blocks")]
    assert posts and all(c.error is None for c in posts)
    sections = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]
    assert max(len(t) for t in sections) <= 3000
    assert "more characters" in sections[-1] and show["text"]["text"] == "Show all"

    await click(h, message, show, "U2")  # anyone who sees the card may read it
    view = (await h.fake.wait_for(lambda: h.fake.views))[0]
    assert not ephemerals(h, "U2")
    texts = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section"][1:]
    assert all(len(t) <= 3000 for t in texts) and len(view["blocks"]) <= 100
    whole = "".join(html.unescape(t.removeprefix("```").removesuffix("```")) for t in texts)
    assert json.loads(whole) == {"service": "web", "version": BIG}

    await click(h, message, approve, "U1")
    await h.final_reply("C1", event["ts"], "done: Deployed web")
    decided = h.fake.bot_messages("C1", event["ts"])[1]
    assert "Approved by <@U1>" in json.dumps(decided["blocks"])
    assert all(len((b.get("text") or {}).get("text") or "") <= 3000 for b in decided["blocks"])
    assert h.fake.count("chat.update", ok=False) == 0


async def test_a_workspace_admin_of_the_conversations_workspace_may_decide(start_slack, fake_openai):
    fake_openai.script = deploy_script()
    h = await start_slack()
    h.fake.users["UWS"] = {"id": "UWS", "is_admin": True}
    event = await h.mention("deploy web", user="U1")
    message, (approve, _) = await h.fake.wait_for(lambda: card_of(h, "C1", event["ts"]))
    # An admin of another workspace (a shared channel) is not an admin here.
    other = SlackSender.click_payload(approve["action_id"], approve["value"], "UWS", "C1", message, team="T2")
    assert (await h.sender.click(other))[0] == 200
    await h.fake.wait_for(lambda: ephemerals(h, "UWS"))
    assert "cannot decide" in ephemerals(h, "UWS")[0]
    await click(h, message, approve, "UWS")
    await h.final_reply("C1", event["ts"], "done: Deployed web")
    assert "Approved by <@UWS>" in json.dumps(h.fake.bot_messages("C1", event["ts"])[1]["blocks"])
