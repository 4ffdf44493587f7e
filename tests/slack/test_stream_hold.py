"""Once the model's final text is in, a natively streamed answer appends nothing more live: the end's
chat.stopStream carries the rest (one Web API call fewer for most answers), and the message shows the
whole answer once, as before. Against the fake Slack Web API."""

from __future__ import annotations

import asyncio

from bots.slack.edits import EditScheduler
from bots.slack.ids import ThreadRef
from bots.slack.limits import StreamBudget
from bots.slack.native import NativeStream, StreamLimits
from bots.slack.web import SlackWeb, make_client
from tests.fakes.slack_api import FakeSlack

LIMITS = StreamLimits(interval=0.05)  # a short pace: without the hold the rest is appended at once


def _stream(fake: FakeSlack, web: SlackWeb) -> NativeStream:
    return NativeStream(web, EditScheduler(web), StreamBudget(), ThreadRef(fake.team, "C1", "1.1"), "1.2", "U1",
                        LIMITS)


async def _live_loop_over(stream: NativeStream) -> None:
    assert stream._task is not None
    await asyncio.wait_for(asyncio.shield(stream._task), 5)


async def test_after_the_final_text_the_stop_carries_the_rest(fake_slack: FakeSlack):
    web = SlackWeb(make_client(fake_slack.token, fake_slack.base_url))
    stream = _stream(fake_slack, web)
    stream.text = "first"
    await stream.begin()
    stream.offer("first and the rest of the answer")
    stream.hold()  # the final text came with the rest
    await _live_loop_over(stream)  # it ends without appending
    assert fake_slack.count("chat.appendStream") == 0
    await stream.finish("finished", "first and the rest of the answer", None)
    stop = [c for c in fake_slack.calls if c.method == "chat.stopStream"]
    assert len(stop) == 1 and "and the rest of the answer" in str(stop[0].params)
    shown = fake_slack.bot_messages("C1", "1.1")
    assert [m["text"] for m in shown] == ["first and the rest of the answer"]


async def test_text_before_the_final_text_still_streams_live(fake_slack: FakeSlack):
    web = SlackWeb(make_client(fake_slack.token, fake_slack.base_url))
    stream = _stream(fake_slack, web)
    stream.text = "first"
    await stream.begin()
    stream.offer("first and more")
    await fake_slack.wait_for(lambda: fake_slack.count("chat.appendStream") == 1, 5)
    stream.offer("first and more and the end")
    stream.hold()
    await _live_loop_over(stream)
    await stream.finish("finished", "first and more and the end", None)
    assert fake_slack.count("chat.appendStream") == 1
    assert [m["text"] for m in fake_slack.bot_messages("C1", "1.1")] == ["first and more and the end"]
