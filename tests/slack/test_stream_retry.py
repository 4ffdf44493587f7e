"""A model round retried in the middle of its stream: the streamed text is taken back and the retry
streams the answer again. The thread ends with one answer showing the final text once, nothing
doubled at the seam, whether the reply streams natively or by edits of a placeholder."""

from __future__ import annotations

import threading

import pytest

from bots.slack.native import StreamLimits
from tests.fakes.openai_server import Reply, break_first

from .test_native_stream import answered

ANSWER = " ".join(f"w{i}" for i in range(30))
CUT = 12  # tokens the first attempt streams before its connection drops


def shown(h, channel: str, thread: str) -> str:  # type: ignore[no-untyped-def]
    return "".join(m["text"] for m in h.fake.bot_messages(channel, thread))


@pytest.mark.parametrize("mode", ["native", "edits"])
@pytest.mark.parametrize("retry", ["same", "different"])
async def test_a_stream_broken_mid_answer_ends_with_one_whole_answer(start_slack, fake_openai, mode, retry):
    gate = threading.Event()  # the first attempt breaks only once its text is visible in the thread
    first = ANSWER if retry == "same" else "Draft that is taken back: " + ANSWER

    def reply(body: dict) -> Reply:
        return Reply(text=first if len(fake_openai.requests) == 1 else ANSWER, token_delay=0.01)

    fake_openai.script = break_first(reply, after=CUT, when=gate)
    cuts = fake_openai.cuts  # (the fake model serves the whole session)
    h = await start_slack(DURABOT_SLACK_STREAMING=mode)
    h.adapter.streams.limits = StreamLimits(interval=0.2)
    event = await h.mention("hello")
    seam = first.split()[CUT - 1]  # the last token the broken attempt streamed
    try:
        await h.fake.wait_for(lambda: seam in shown(h, "C1", event["ts"]), 15)
    finally:
        gate.set()

    msgs = await answered(h, "C1", event["ts"], "w29", timeout=30)
    assert fake_openai.cuts == cuts + 1 and len(fake_openai.requests) == 2  # the round ran twice
    assert [m["text"].strip() for m in msgs] == [ANSWER], msgs  # one message, the final text, once
    assert "Draft" not in shown(h, "C1", event["ts"])
    if mode == "native":
        [msg] = msgs
        assert msg["streaming_state"] == "completed"
        assert msg["metadata"]["event_payload"]["key"] == f"{event['ts']}:s0"
        assert h.fake.count("chat.startStream") == 1 and h.fake.count("chat.postMessage") == 0
        if retry == "different":  # the streamed draft cannot be continued: the message is rewritten
            assert h.fake.count("chat.update") == 1, [c.method for c in h.fake.calls]
    else:
        assert h.fake.count("chat.postMessage") == 1  # the placeholder, edited into the answer
    assert h.fake.over_limit == 0
