"""Threads longer than one page of conversations.replies: what the bot posted is still found again."""

from __future__ import annotations

import json

from bots.slack import SlackAdapter
from bots.slack.render import metadata
from bots.slack.web import SlackWeb, make_client
from tests.fakes.openai_server import Reply
from tests.fakes.slack_api import FakeSlack

from .test_approvals_and_commands import card_of


def deploy_script(body):
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text=f"done: {last['content']}")
    return Reply(tool_calls=[("deploy", {"service": "web"})])


def chatter(fake: FakeSlack, channel: str, thread: str, n: int) -> None:
    for i in range(n):
        fake.add_user_message(channel, f"chatter {i}", user=f"U{100 + i % 7}", thread_ts=thread)


async def test_restarted_adapter_completes_placeholder_and_card_after_450_replies(start_slack, fake_openai):
    fake_openai.script = deploy_script
    h = await start_slack()
    parent = h.fake.add_user_message("C1", "release thread", user="U9")
    chatter(h.fake, "C1", parent["ts"], 460)
    event = await h.mention("deploy web", thread_ts=parent["ts"], user="U1")
    turn, conversation = event["ts"], f"slack:T1:C1:{parent['ts']}"
    await h.fake.wait_for(lambda: card_of(h, "C1", parent["ts"]), 20)
    placeholder = [m for m in h.fake.bot_messages("C1", parent["ts"]) if "blocks" not in m or not m["blocks"]]
    assert len(placeholder) == 1

    # The adapter goes away with the card pending; the decision and the answer happen without it.
    await h.adapter.stop()
    await h.agent.get_run(conversation, turn).approve(by="U1")
    await h.agent.get_run(conversation, turn).result(timeout=30)
    posts_before = h.fake.count("chat.postMessage")

    fresh = SlackAdapter(h.settings, h.agent)  # nothing in memory: both deliveries look the thread up
    await fresh.start()
    try:
        await h.final_reply("C1", parent["ts"], "done: Deployed web", timeout=20)
        await h.fake.wait_for(lambda: card_of(h, "C1", parent["ts"]) is None, 20)
    finally:
        await fresh.stop()
    mine = h.fake.bot_messages("C1", parent["ts"])
    assert len(mine) == 2, mine  # the placeholder, completed, and the card, decided: nothing twice
    assert mine[0]["ts"] == placeholder[0]["ts"] and mine[0]["text"].startswith("done: Deployed web")
    assert "Approved by <@U1>" in json.dumps(mine[1]["blocks"])
    assert h.fake.count("chat.postMessage") == posts_before == 2
    lookups = [c for c in h.fake.calls if c.method == "conversations.replies" and c.params.get("oldest")]
    assert lookups and all(c.params["oldest"] == turn for c in lookups)
    assert h.fake.over_limit == 0


async def test_find_keys_follows_the_cursor_through_a_long_thread(fake_slack: FakeSlack):
    parent = fake_slack.add_user_message("C1", "busy thread")
    thread = parent["ts"]
    chatter(fake_slack, "C1", thread, 450)
    web = SlackWeb(make_client(fake_slack.token, fake_slack.base_url))
    posted = await web.post("C1", thread, "the answer", key="1.000001:0")
    chatter(fake_slack, "C1", thread, 30)

    assert (await web.find_keys("C1", thread)) == {"1.000001:0": posted}
    pages = [c for c in fake_slack.calls if c.method == "conversations.replies"]
    assert len(pages) == 3  # 482 messages, 200 a page
    assert not pages[0].params.get("cursor") and all(p.params.get("cursor") for p in pages[1:])

    before = len(fake_slack.calls)
    assert (await web.find_keys("C1", thread, oldest=fake_slack.thread("C1", thread)[440]["ts"])) == {
        "1.000001:0": posted}
    assert len(fake_slack.calls) - before == 1  # narrowed to the turn's tail: one page


async def test_fake_pages_replies_like_slack(fake_slack: FakeSlack):
    parent = fake_slack.add_user_message("C1", "parent")
    thread = parent["ts"]
    chatter(fake_slack, "C1", thread, 9)
    fake_slack.messages["C1"][-1]["metadata"] = metadata("k")
    replies = [m["ts"] for m in fake_slack.thread("C1", thread)[1:]]
    web = SlackWeb(make_client(fake_slack.token, fake_slack.base_url))

    first = await web.call("conversations.replies", channel="C1", ts=thread, limit=4)
    assert [m["ts"] for m in first["messages"]] == [thread, *replies[:3]]
    assert first["has_more"] and first["response_metadata"]["next_cursor"]
    second = await web.call("conversations.replies", channel="C1", ts=thread, limit=4,
                            cursor=first["response_metadata"]["next_cursor"])
    assert [m["ts"] for m in second["messages"]] == replies[3:7]
    third = await web.call("conversations.replies", channel="C1", ts=thread, limit=4,
                           cursor=second["response_metadata"]["next_cursor"], include_all_metadata=True)
    assert [m["ts"] for m in third["messages"]] == replies[7:]
    assert third["response_metadata"]["next_cursor"] == "" and not third["has_more"]
    assert "metadata" in third["messages"][-1] and "metadata" not in second["messages"][0]

    # oldest / latest select replies (exclusive unless inclusive); the parent still opens the page.
    ranged = await web.call("conversations.replies", channel="C1", ts=thread, oldest=replies[2], latest=replies[5])
    assert [m["ts"] for m in ranged["messages"]] == [thread, replies[3], replies[4]]
    ranged = await web.call("conversations.replies", channel="C1", ts=thread, oldest=replies[2],
                            latest=replies[5], inclusive=True)
    assert [m["ts"] for m in ranged["messages"]] == [thread, *replies[2:6]]

    bad = await fake_slack_call(fake_slack, "conversations.replies", channel="C1", ts=thread, cursor="nope")
    assert bad["error"] == "invalid_cursor"


async def fake_slack_call(fake: FakeSlack, method: str, **params) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.post(fake.base_url + method, data=params,
                                headers={"Authorization": f"Bearer {fake.token}"}) as resp:
            return await resp.json()
