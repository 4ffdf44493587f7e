"""Native streaming at its limits: many threads at once inside Slack's tiers, messages that outlive a
stream's lifetime, and an adapter that goes away in the middle of a stream."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from bots.slack.native import StreamLimits
from tests.fakes.openai_server import Reply

from .test_native_stream import answered, lookup, tool_then_answer

NATIVE = {"DURABOT_SLACK_STREAMING": "native"}


async def test_twenty_threads_at_once_stay_inside_every_tier(start_slack, fake_openai):
    answer = " ".join(f"w{i}" for i in range(60))
    fake_openai.script = lambda body: Reply(text=answer, token_delay=0.03)
    h = await start_slack(**NATIVE)
    events = [h.mention_event(f"stream {i}", channel=f"C{i % 5}") for i in range(20)]
    assert h.sender is not None
    statuses = await asyncio.gather(*(h.sender.event(e) for e in events))
    assert all(status == 200 for status, _ in statuses)
    for e in events:
        msgs = await answered(h, e["channel"], e["ts"], "w59", timeout=60)
        assert [m["text"].strip() for m in msgs] == [answer], msgs  # one message, the whole answer
    assert h.fake.over_limit == 0  # not one request over any tier
    starts = h.fake.count("chat.startStream")
    # Tier 2 has room for most of them; the rest stream by edits at once instead of waiting.
    assert 10 <= starts <= 18 and h.fake.count("chat.stopStream") == starts
    assert h.fake.count("chat.postMessage") == 20 - starts


async def test_a_long_tool_call_outlives_the_stream_and_the_answer_is_whole(start_slack, make_agent, fake_openai):
    fake_openai.script = tool_then_answer("Let me look that up.", "lookup", {"key": "k9", "seconds": 3.0},
                                          "Found it: value of k9.")
    h = await start_slack(agent=await make_agent(tools=[lookup]), **NATIVE)
    h.fake.stream_expiry = 2.0  # Slack ends an unstopped stream after this long
    h.adapter.streams.limits = StreamLimits(max_age=1.2, interval=0.2)  # and we stop ours before that
    event = await h.mention("what is k9?")
    msgs = await answered(h, "C1", event["ts"], "Found it", timeout=30)
    assert [m["metadata"]["event_payload"]["key"] for m in msgs] == [f"{event['ts']}:s0", f"{event['ts']}:s1"]
    assert all(m["streaming_state"] == "completed" for m in msgs)
    assert msgs[0]["text"] == "Let me look that up." and msgs[1]["text"] == "\n\nFound it: value of k9."
    assert msgs[0]["tasks"]["call_1_0"]["status"] == "in_progress"  # stopped while the tool ran...
    assert msgs[1]["tasks"]["call_1_0"]["status"] == "complete"  # ...and finished in the next message
    assert not any(c.error == "message_not_in_streaming_state" for c in h.fake.calls)
    assert h.fake.over_limit == 0


async def test_a_stream_that_expires_anyway_is_completed_by_an_edit(start_slack, make_agent, fake_openai):
    fake_openai.script = tool_then_answer("Let me look that up.", "lookup", {"key": "k2", "seconds": 2.5},
                                          "Found it: value of k2.")
    h = await start_slack(agent=await make_agent(tools=[lookup]), **NATIVE)
    h.fake.stream_expiry = 1.5  # shorter than we expect: the stream is gone when the answer comes
    h.adapter.streams.limits = StreamLimits(max_age=60.0, interval=0.2)
    event = await h.mention("what is k2?")

    msgs = await answered(h, "C1", event["ts"], "Found it: value of k2.", timeout=30)
    joined = "".join(m["text"] for m in msgs)
    assert joined.count("Found it: value of k2.") == 1 and joined.count("Let me look that up.") == 1
    assert all(m.get("metadata", {}).get("event_payload", {}).get("key", "").startswith(f"{event['ts']}:s")
               for m in msgs), [(m["text"], m.get("metadata"), m.get("streaming_state")) for m in msgs]
    assert msgs[0]["streaming_state"] == "expired" and msgs[-1]["streaming_state"] == "completed"
    assert any(c.method == "chat.update" for c in h.fake.calls)  # the expired message, edited
    assert h.fake.over_limit == 0


@pytest.mark.parametrize("known_by", ["record", "streaming_state"])
async def test_an_adapter_gone_mid_stream_is_replaced_and_the_stream_finished_once(
        start_slack, fake_openai, tmp_path, known_by):
    """The next process knows the open stream by the ts the first one recorded when it started (the
    thread shows nothing that tells a streamed message apart, as Slack documents); without a record
    (another database here: a process that died right after the start), by the streaming state a
    thread might show."""
    answer = " ".join(f"word{i}" for i in range(80))
    fake_openai.script = lambda body: Reply(text=answer, token_delay=0.05)
    first = await start_slack(**NATIVE)
    if known_by == "streaming_state":
        first.fake.replies_show_streaming_state = True
    event = await first.mention("tell me slowly")

    def partly_streamed() -> bool:
        msgs = first.fake.bot_messages("C1", event["ts"])
        return bool(msgs) and "word3" in msgs[0]["text"] and msgs[0]["streaming_state"] == "in_progress"

    await first.fake.wait_for(partly_streamed, 15)
    # This process stops dead: its live stream and its delivery worker are gone, the stream stays open.
    await first.adapter.stop()
    shown_then = first.fake.bot_messages("C1", event["ts"])[0]["text"]
    assert "word79" not in shown_then
    other_db = {}
    if known_by == "streaming_state":
        other_db["DURABOT_DATABASE_URL"] = f"sqlite:///{tmp_path}/other.db"
    second = await start_slack(agent=first.agent, **NATIVE, **other_db)

    def finished() -> list[dict] | None:
        msgs = second.fake.bot_messages("C1", event["ts"])
        return msgs if msgs and "word79" in msgs[0]["text"] else None

    [msg] = await second.fake.wait_for(finished, 30)  # one message: the stream, completed
    assert msg["text"] == answer
    assert msg["streaming_state"] == "completed"
    assert msg["metadata"]["event_payload"]["key"] == f"{event['ts']}:s0"
    assert second.fake.count("chat.postMessage") == 0 and second.fake.count("chat.startStream") == 1
    assert second.fake.over_limit == 0
