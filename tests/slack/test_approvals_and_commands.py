"""Approval cards and clicks; /durabot runs, status and cancel."""

from __future__ import annotations

import json
import re
import urllib.parse

from tests.fakes.openai_server import Reply
from tests.fakes.slack_api import SlackSender


def deploy_script(body):
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text=f"done: {last['content']}")
    return Reply(tool_calls=[("deploy", {"service": "web", "version": "v" + "9" * 3000})])


def card_of(h, channel, thread_ts):
    for m in h.fake.bot_messages(channel, thread_ts):
        for b in m.get("blocks") or []:
            if b.get("type") == "actions":
                return m, b["elements"]
    return None


def ephemerals(h, user):
    return [c.params["text"] for c in h.fake.calls if c.method == "chat.postEphemeral" and c.params["user"] == user]


async def click(h, message, element, user):
    payload = SlackSender.click_payload(element["action_id"], element["value"], user, message["channel"], message)
    status, _ = await h.sender.click(payload)
    assert status == 200


async def test_approval_card_foreign_click_decision_and_stale_click(start_slack, fake_openai):
    fake_openai.script = deploy_script
    h = await start_slack(DURABOT_ADMINS="UADMIN")
    event = await h.mention("deploy web", user="U1")
    message, (approve, deny, show) = await h.fake.wait_for(lambda: card_of(h, "C1", event["ts"]))
    card_text = json.dumps(message["blocks"])
    assert "deploy" in card_text and "<@U1>" in card_text and "more characters" in card_text
    assert show["action_id"].startswith("durabot:show:")
    assert len(approve["action_id"]) <= 255 and len(approve["value"]) <= 2000
    assert approve["value"].startswith(f"slack:T1:C1:{event['ts']}|")

    await click(h, message, approve, "U2")  # not the requester, not an approver
    await h.fake.wait_for(lambda: ephemerals(h, "U2"))
    assert "cannot decide" in ephemerals(h, "U2")[0]
    assert card_of(h, "C1", event["ts"]) is not None  # still pending
    status = await h.agent.status(f"slack:T1:C1:{event['ts']}")
    assert status.state == "awaiting_approval"

    await click(h, message, approve, "U1")
    await h.fake.wait_for(lambda: card_of(h, "C1", event["ts"]) is None)
    decided = json.dumps(h.fake.bot_messages("C1", event["ts"])[1]["blocks"])
    assert "Approved by <@U1>" in decided
    await h.final_reply("C1", event["ts"], "done: Deployed web")

    await click(h, message, deny, "UADMIN")  # a stale click on the decided card
    await h.fake.wait_for(lambda: ephemerals(h, "UADMIN"))
    assert "already approved by <@U1>" in ephemerals(h, "UADMIN")[0]
    assert len(h.fake.bot_messages("C1", event["ts"])) == 2  # answer + card, nothing else
    assert h.fake.over_limit == 0


async def test_denied_by_approver_and_click_on_gone_run(start_slack, fake_openai):
    fake_openai.script = deploy_script
    h = await start_slack(DURABOT_APPROVERS="U5")
    event = await h.mention("deploy web", user="U1")
    message, (_, deny, _) = await h.fake.wait_for(lambda: card_of(h, "C1", event["ts"]))
    await click(h, message, deny, "U1")  # the requester is not an approver when approvers are listed
    await h.fake.wait_for(lambda: ephemerals(h, "U1"))
    await click(h, message, deny, "U5")
    await h.final_reply("C1", event["ts"], "not run")
    assert "Denied by <@U5>" in json.dumps(h.fake.bot_messages("C1", event["ts"])[1]["blocks"])

    gone = dict(message, ts=message["ts"])
    ghost = deny["value"].replace(event["ts"], "1111111111.000001")
    payload = SlackSender.click_payload(deny["action_id"], ghost, "U5", "C1", gone)
    assert (await h.sender.click(payload))[0] == 200
    await h.fake.wait_for(lambda: ephemerals(h, "U5"))
    assert "no longer open" in ephemerals(h, "U5")[0] or "ended" in ephemerals(h, "U5")[0]
    bogus = SlackSender.click_payload("durabot:approve:x", "garbage", "U5", "C1", gone)
    assert (await h.sender.click(bogus))[0] == 200


async def test_slash_runs_status_cancel(start_slack, fake_openai):
    fake_openai.script = deploy_script
    h = await start_slack(DURABOT_ADMINS="UADMIN")
    h.fake.users["UWSADMIN"] = {"id": "UWSADMIN", "is_admin": True}
    event = await h.mention("deploy web", user="U1")
    await h.fake.wait_for(lambda: card_of(h, "C1", event["ts"]))
    short = f"C1:{event['ts']}"

    async def runs() -> str:
        status, text = await h.sender.command("runs", "U1")
        assert status == 200
        return text

    text = ""
    for _ in range(50):  # the visibility store lags a little behind a new workflow
        text = await runs()
        if short in text:
            break
        await h.fake.wait_for(lambda: True, 0.1)
    assert short in text and "awaiting_approval" in text and "fake.slack.test/archives/C1/p" in text

    status, text = await h.sender.command(f"status {short}", "U1")
    assert status == 200 and "waiting for approval of deploy" in text
    assert re.search(r"Context: [\d,]+ of [\d,]+ tokens \(\d+%\); nothing summarised yet", text), text
    link = f"https://fake.slack.test/archives/C1/p{event['ts'].replace('.', '')}"
    status, text = await h.sender.command(f"status <{link}>", "U1")
    assert "awaiting_approval" in text

    status, text = await h.sender.command(f"cancel {short}", "U1")
    assert "Only admins" in text
    assert (await h.agent.status(f"slack:T1:C1:{event['ts']}")).state == "awaiting_approval"
    status, text = await h.sender.command(f"cancel {link}", "UWSADMIN")  # a workspace admin
    assert status == 200 and "Cancelling" in text
    await h.final_reply("C1", event["ts"], "Run cancelled by <@UWSADMIN>")
    card = json.dumps(h.fake.bot_messages("C1", event["ts"])[1]["blocks"])
    assert "Cancelled: the run ended before a decision" in card
    status, text = await h.sender.command("frobnicate", "U1")
    assert "Usage" in text
    status, text = await h.sender.command("status nonsense", "U1")
    assert "not a run id" in text


async def test_signatures_and_malformed_payloads(start_slack, fake_openai):
    h = await start_slack()
    event = h.mention_event("forged")
    body = h.sender.event_body(event)
    assert (await h.sender.post(body, "application/json", secret="wrong"))[0] == 401
    assert (await h.sender.post(body, "application/json", timestamp=1_000_000_000))[0] == 401
    assert (await h.sender.post("{not json", "application/json"))[0] == 400
    assert (await h.sender.post(json.dumps({"type": "event_callback"}), "application/json"))[0] == 400
    assert (await h.sender.post("payload=" + urllib.parse.quote("[1,2"), "application/x-www-form-urlencoded"))[0] == 400
    weird = {"type": "app_mention", "user": 5, "text": None, "channel": "C1", "ts": "1.2"}
    assert (await h.sender.event(weird))[0] in (200, 400)
    assert fake_openai.requests == []
    assert h.fake.count("chat.postMessage") == 0
    # Still serving.
    await h.mention("still alive")
    assert fake_openai.requests or await h.fake.wait_for(lambda: fake_openai.requests)
