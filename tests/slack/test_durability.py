"""Exactly-once replies across restarts and lost responses; limits under load; long answers; Socket Mode."""

from __future__ import annotations

import asyncio
import json
import re
import threading

from bots.slack import SlackAdapter
from bots.slack.render import MAX_PART
from tests.fakes.openai_server import Reply


async def test_adapter_killed_mid_stream_completes_the_placeholder(start_slack, fake_openai):
    # The model pauses mid-answer until the adapter is down, so the turn cannot end (and be delivered
    # by the adapter being stopped) before then.
    resume = threading.Event()
    fake_openai.script = lambda body: Reply(text="slow words " * 40, token_delay=0.05, hold_after=5,
                                            hold_until=resume)
    h = await start_slack()
    event = await h.mention("tell me slowly")
    thread = event["ts"]
    # Wait for live text, then kill the adapter (its delivery worker and streams) mid-stream.
    try:
        await h.fake.wait_for(lambda: any("slow words" in m["text"]
                                          for m in h.fake.bot_messages("C1", thread)))
        await h.adapter.stop()
    finally:
        resume.set()
    handle = h.agent.get_run(f"slack:T1:C1:{thread}", thread)
    await handle.result(timeout=30)  # the turn finishes while no adapter runs
    assert "Thinking" in h.fake.bot_messages("C1", thread)[0]["text"]
    # A new adapter process: nothing in memory; the pending delivery finds the placeholder by its key.
    fresh = SlackAdapter(h.settings, h.agent)
    await fresh.start()
    try:
        final = await h.final_reply("C1", thread, "slow words slow words", timeout=20)
    finally:
        await fresh.stop()
    assert final["text"].strip() == ("slow words " * 40).strip()
    assert len(h.fake.bot_messages("C1", thread)) == 1
    assert h.fake.count("chat.postMessage") == 1


async def test_lost_responses_never_double_post(start_slack, fake_openai):
    long_answer = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum " * 200 for i in range(12))
    fake_openai.script = lambda body: Reply(text=long_answer)
    h = await start_slack()
    # The placeholder's response and a later part's response are lost after Slack posted them.
    h.fake.lose_response["chat.postMessage"] = 1
    event = await h.mention("long please")
    thread = event["ts"]
    await h.fake.wait_for(lambda: h.fake.count("chat.postMessage") >= 1)
    h.fake.lose_response["chat.postMessage"] = 1  # now for the second part

    def whole():
        msgs = h.fake.bot_messages("C1", thread)
        return len(msgs) >= 2 and "Paragraph 11" in msgs[-1]["text"] and "Thinking" not in msgs[0]["text"]

    await h.fake.wait_for(whole, 20)
    msgs = h.fake.bot_messages("C1", thread)
    keys = [m["metadata"]["event_payload"]["key"] for m in msgs]
    assert len(keys) == len(set(keys))  # no part twice
    assert msgs[0]["metadata"]["event_payload"]["key"] == f"{thread}:0"  # the placeholder was completed
    joined = "\n\n".join(m["text"] for m in msgs)
    assert [int(n) for n in re.findall(r"Paragraph (\d+):", joined)] == list(range(12))
    assert all(len(m["text"]) <= MAX_PART for m in msgs)


async def test_sixty_thousand_characters_with_a_code_block_across_the_split(start_slack, fake_openai):
    code = "\n".join(f"    line_{i} = compute({i})  # keep" for i in range(1000))
    prose = "\n\n".join(f"Section {i}. " + "words " * 300 for i in range(14))
    answer = prose + "\n\n```python\n" + code + "\n```\n\nThe end."
    assert len(answer) >= 60_000
    fake_openai.script = lambda body: Reply(text=answer, tokens=[answer[i:i + 2000] for i in range(0, len(answer), 2000)])
    h = await start_slack()
    event = await h.mention("a huge answer")
    thread = event["ts"]
    await h.fake.wait_for(lambda: any("The end." in m["text"] for m in h.fake.bot_messages("C1", thread)), 30)
    msgs = h.fake.bot_messages("C1", thread)
    assert len(msgs) >= 5 and all(len(m["text"]) <= MAX_PART for m in msgs)
    for m in msgs:
        assert m["text"].count("```") % 2 == 0  # every part closes what it opens
    opened = [m for m in msgs if m["text"].lstrip().startswith("```")]
    assert opened, "the code block continues in a later part, reopened"
    text = "\n".join(m["text"] for m in msgs)
    assert all(f"line_{i} = compute({i})" in text for i in range(1000))
    assert h.fake.over_limit == 0


async def test_twenty_threads_streaming_at_once_stay_within_limits(start_slack, fake_openai):
    fake_openai.script = lambda body: Reply(text="token " * 40, token_delay=0.02)
    h = await start_slack()
    events = [h.mention_event(f"thread {i}", channel=f"C{i % 5}") for i in range(20)]
    statuses = await asyncio.gather(*(h.sender.event(e) for e in events))
    assert all(s == 200 for s, _ in statuses)

    def all_done():
        return all(
            any(m["text"].strip() == ("token " * 40).strip() for m in h.fake.bot_messages(e["channel"], e["ts"]))
            for e in events
        )

    await h.fake.wait_for(all_done, 40)
    assert h.fake.over_limit == 0
    assert h.fake.count("chat.update") <= 50
    for e in events:
        assert len(h.fake.bot_messages(e["channel"], e["ts"])) == 1


async def test_socket_mode(start_slack, fake_openai):
    h = await start_slack(socket=True)
    event = h.mention_event("over the socket")
    body = {"team_id": "T1", "type": "event_callback", "event_id": "EvS1", "event": event}
    ack = await h.fake.socket_send("events_api", body)
    assert "envelope_id" in ack
    await h.final_reply("C1", event["ts"], "echo: over the socket")
    await h.fake.socket_send("events_api", body, retry_attempt=1)  # a retry: no second turn
    ack = await h.fake.socket_send("slash_commands", {
        "token": "legacy", "team_id": "T1", "channel_id": "C1", "user_id": "U1", "command": "/durabot",
        "text": "help", "response_url": "https://hooks.example/c", "trigger_id": "1.2.3",
    })
    assert "Usage" in json.dumps(ack.get("payload"))
    assert len(fake_openai.requests) == 1
    assert len(h.fake.bot_messages("C1", event["ts"])) == 1
