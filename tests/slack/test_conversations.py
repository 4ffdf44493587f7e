"""Mentions, thread follow-ups, DMs, retries and the bot's own messages."""

from __future__ import annotations

from bots.slack.ids import ThreadRef
from tests.fakes.openai_server import Reply, last_user_text


async def test_mention_streams_into_one_reply(start_slack, fake_openai):
    fake_openai.script = lambda body: Reply(text="streamed " * 30, token_delay=0.03)
    h = await start_slack()
    event = await h.mention("hello there")
    # The placeholder comes first, then live edits, then the final text: all in one message.
    await h.fake.wait_for(lambda: any(m.get("edits") for m in h.fake.bot_messages("C1", event["ts"])))
    final = await h.final_reply("C1", event["ts"], "streamed streamed")
    assert final["text"].strip() == ("streamed " * 30).strip()
    assert len(h.fake.bot_messages("C1", event["ts"])) == 1
    assert final["thread_ts"] == event["ts"]
    texts = [t for _, ch, ts, t in h.fake.visible if ts == final["ts"]]
    assert texts[0] == "_Thinking…_" and len(texts) >= 3  # placeholder, live text, final
    assert last_user_text(fake_openai.requests[0]) == "hello there"
    assert h.fake.over_limit == 0


async def test_retries_and_event_pairs_start_one_turn(start_slack, fake_openai):
    h = await start_slack()
    event = h.mention_event("only once")
    statuses = [await h.sender.event(event, event_id="Ev1")]
    statuses.append(await h.sender.event(event, event_id="Ev1", retry_num=1))
    plain = dict(event, type="message", channel_type="channel")  # the message event of the same message
    statuses.append(await h.sender.event(plain, event_id="Ev2"))
    assert [s for s, _ in statuses] == [200, 200, 200]
    await h.final_reply("C1", event["ts"], "echo: only once")
    # A retry that reaches a fresh adapter process (nothing in memory) is deduplicated by the workflow.
    h.adapter._seen.clear()
    h.adapter.streams._placeholders.clear()
    posts = h.fake.count("chat.postMessage")
    assert (await h.sender.event(event, event_id="Ev1", retry_num=2))[0] == 200
    assert not h.adapter.streams._tasks and not h.adapter.streams._placeholders  # nothing re-posted
    assert h.fake.count("chat.postMessage") == posts
    assert len(fake_openai.requests) == 1
    assert len(h.fake.bot_messages("C1", event["ts"])) == 1


async def test_thread_follow_up_without_mention_and_ignored_messages(start_slack, fake_openai):
    h = await start_slack()
    first = await h.mention("first")
    await h.final_reply("C1", first["ts"], "echo: first")
    follow = h.fake.add_user_message("C1", "second, no mention", thread_ts=first["ts"])
    assert (await h.sender.event(follow))[0] == 200
    await h.final_reply("C1", first["ts"], "echo: second, no mention")
    # Channel chatter, a thread the bot is not in, the bot's own message and an edit start nothing.
    other = h.fake.add_user_message("C1", "unrelated")
    in_other_thread = h.fake.add_user_message("C1", "reply elsewhere", thread_ts=other["ts"])
    own = dict(h.fake.bot_messages("C1", first["ts"])[0], channel_type="channel")
    edit = {"type": "message", "subtype": "message_changed", "channel": "C1", "ts": "1.1",
            "message": {"text": "x"}}
    for ev in (other, in_other_thread, own, edit):
        assert (await h.sender.event(ev))[0] == 200
    assert len(fake_openai.requests) == 2
    assert len(h.fake.bot_messages("C1", first["ts"])) == 2
    assert h.fake.bot_messages("C1", other["ts"]) == []


async def test_direct_messages(start_slack, fake_openai):
    h = await start_slack()
    first = h.fake.add_user_message("D1", "hi in a DM")
    assert (await h.sender.event(first))[0] == 200
    await h.fake.wait_for(lambda: any("echo: hi in a DM" in m["text"] for m in h.fake.bot_messages("D1")))
    second = h.fake.add_user_message("D1", "and again")
    assert (await h.sender.event(second))[0] == 200
    await h.fake.wait_for(lambda: any("echo: and again" in m["text"] for m in h.fake.bot_messages("D1")))
    # Both DM messages are one conversation; replies are not threaded in a DM.
    assert all(not m.get("thread_ts") for m in h.fake.bot_messages("D1"))
    assert len(fake_openai.requests[1]["messages"]) > len(fake_openai.requests[0]["messages"])


async def test_conversation_started_inside_a_thread_gets_its_history(start_slack, fake_openai):
    h = await start_slack()
    root = h.fake.add_user_message("C2", "we deploy on fridays", user="U7")
    h.fake.add_user_message("C2", "x" * 5000, user="U8", thread_ts=root["ts"])  # long: shortened
    event = await h.mention("what did U7 say?", channel="C2", thread_ts=root["ts"])
    await h.final_reply("C2", root["ts"], "echo: what did U7 say?")
    sent = fake_openai.requests[0]["messages"]
    contents = [m.get("content") or "" for m in sent]
    assert any("we deploy on fridays" in c for c in contents)
    assert all(len(c) < 2_100 for c in contents)
    assert contents[-1] == "what did U7 say?"
    assert event["ts"] not in str(sent)


async def test_bare_mentions_get_a_hint_and_start_no_turn(start_slack, fake_openai):
    h = await start_slack()
    bare = await h.mention("")
    punctuation = await h.mention(" ?! ")
    dm = h.fake.add_user_message("D1", f"<@{h.fake.bot_user}>")
    assert (await h.sender.event(dm))[0] == 200
    for channel, thread in (("C1", bare["ts"]), ("C1", punctuation["ts"]), ("D1", None)):
        hints = h.fake.bot_messages(channel, thread)
        assert len(hints) == 1 and hints[0]["text"].startswith("Ask me something, e.g. <@"), hints
    assert h.fake.bot_messages("C1", bare["ts"])[0]["thread_ts"] == bare["ts"]
    assert fake_openai.requests == []
    assert await h.agent.status(ThreadRef(h.fake.team, "C1", bare["ts"]).conversation_id) is None  # none started
