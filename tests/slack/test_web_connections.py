"""The adapter's Web API calls reuse kept-alive connections instead of opening one per call.

Counted by the fake Slack Web API, which records the TCP connection (the client's address and port)
each call came over: a natively streamed answer is a few calls one after another (start, appends,
stop), and they must not each pay a new connection (on Slack, a TLS handshake).
"""

from __future__ import annotations

from tests.fakes.openai_server import Reply

ANSWER = " ".join(f"w{i}" for i in range(30))


async def test_a_streamed_answer_reuses_connections(start_slack, fake_openai):
    fake_openai.script = lambda body: Reply(text=ANSWER, token_delay=0.01)
    h = await start_slack(DURABOT_SLACK_STREAMING="native")
    for turn in range(2):
        mention = await h.mention(f"question {turn}")
        await h.fake.wait_for(lambda ts=mention["ts"]: any(
            m["text"] == ANSWER and m.get("streaming_state") != "in_progress"
            for m in h.fake.bot_messages("C1", ts)), 20)
    calls = [c for c in h.fake.calls if c.method.startswith("chat.")]
    methods = {c.method for c in calls}
    assert {"chat.startStream", "chat.stopStream"} <= methods, methods
    connections = {c.connection for c in calls}
    assert None not in connections
    # Two turns' calls, one after another: a connection per call would make these equal.
    assert len(connections) < len(calls) / 2, (len(connections), len(calls))


async def test_the_adapter_closes_its_connections_when_it_stops(start_slack, fake_openai):
    fake_openai.script = lambda body: Reply(text=ANSWER, token_delay=0.01)
    h = await start_slack()
    mention = await h.mention("question")
    await h.fake.wait_for(lambda: any(m["text"] == ANSWER and m.get("streaming_state") != "in_progress"
                                      for m in h.fake.bot_messages("C1", mention["ts"])), 20)
    session = h.adapter.connections._session
    assert session is not None and not session.closed
    await h.adapter.stop()
    assert session.closed
