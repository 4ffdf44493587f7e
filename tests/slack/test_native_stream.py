"""Native streaming: an answer streamed with chat.startStream / appendStream / stopStream, finished
exactly once by the delivery, with tool calls as task cards and a fallback to edits."""

from __future__ import annotations

from tests.fakes.openai_server import Reply
from tests.fakes.slack_api import FakeSlack

from .conftest import Harness


def streamed(fake: FakeSlack, channel: str, thread: str) -> list[dict]:
    return [m for m in fake.bot_messages(channel, thread) if "streaming_state" in m]


async def answered(h: Harness, channel: str, thread: str, text: str, timeout: float = 20.0) -> list[dict]:
    def done() -> list[dict] | None:
        msgs = h.fake.bot_messages(channel, thread)
        return msgs if msgs and all(m.get("streaming_state") != "in_progress" for m in msgs) and \
            text in "".join(m["text"] for m in msgs) else None

    try:
        return await h.fake.wait_for(done, timeout)
    except TimeoutError:
        calls = [(c.method, c.status, c.error) for c in h.fake.calls]
        raise AssertionError(f"no finished answer; thread {h.fake.thread(channel, thread)}; calls {calls}") from None


async def test_an_answer_streams_natively_and_is_finished_once(start_slack, fake_openai):
    answer = " ".join(f"w{i}" for i in range(40))
    fake_openai.script = lambda body: Reply(text=answer, token_delay=0.02)
    h = await start_slack()
    event = await h.mention("hello")
    [msg] = await answered(h, "C1", event["ts"], "w39")
    assert msg["text"] == answer
    assert msg["streaming_state"] == "completed"
    assert msg["metadata"]["event_payload"]["key"] == f"{event['ts']}:s0"
    assert msg["metadata"]["event_payload"]["final"] is True
    assert h.fake.count("chat.startStream") == 1 and h.fake.count("chat.stopStream") == 1
    assert h.fake.count("chat.postMessage") == 0 and h.fake.count("chat.update") == 0
    assert h.fake.over_limit == 0
    start = next(c for c in h.fake.calls if c.method == "chat.startStream")
    assert start.params["recipient_user_id"] == "U1" and start.params["recipient_team_id"] == "T1"
