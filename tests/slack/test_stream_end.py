"""A live stream ends with its turn even when the answer is delivered by another replica.

Here nothing in the process delivers anything (the turns have no delivery target), as on the replica
that streams while the other one runs ``durabot.deliver``: the stream must notice the end by itself,
leave the final text in the placeholder and let go of its edit state.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from agent_core import AgentMode, timeouts_for

from bots.slack.edits import EditScheduler
from bots.slack.ids import ThreadRef
from bots.slack.streaming import LiveStreams
from bots.slack.web import SlackWeb, make_client
from tests.fakes.openai_server import Reply
from tests.fakes.slack_api import FakeSlack


async def until(condition, timeout: float = 15.0) -> None:
    """Poll an in-process condition that no fake call announces (a task ending)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def streaming_without_delivery(make_agent, fake: FakeSlack, text: str):
    # A short heartbeat timeout: a cancelled model round notices within seconds.
    agent = await make_agent(timeouts=replace(timeouts_for(AgentMode.INTERACTIVE), heartbeat=3.0))
    web = SlackWeb(make_client(fake.token, fake.base_url))
    editor = EditScheduler(web)
    streams = LiveStreams(agent, web, lambda _team: editor)
    msg = fake.add_user_message("C1", text)
    ref = ThreadRef("T1", "C1", msg["ts"])
    return agent, web, editor, streams, ref, msg["ts"]


async def test_the_stream_writes_the_final_text_and_lets_go(make_agent, fake_slack, fake_openai):
    answer = " ".join(f"w{i}" for i in range(12))
    fake_openai.script = lambda body: Reply(text=answer, token_delay=0.03)
    agent, _web, editor, streams, ref, turn = await streaming_without_delivery(make_agent, fake_slack, "hi")
    handle = await agent.run_async("hi", ref.conversation_id, message_id=turn)
    streams.start(ref, turn)
    await handle.result(timeout=20)
    await fake_slack.wait_for(lambda: [m["text"] for m in fake_slack.bot_messages("C1", turn)] == [answer])
    await until(lambda: streams.open_count == 0)
    [placeholder] = fake_slack.bot_messages("C1", turn)
    assert placeholder["metadata"]["event_payload"]["key"] == f"{turn}:0"
    assert editor.open_count() == 0
    await editor.aclose()


async def test_a_cancelled_turn_ends_its_stream_with_the_notice(make_agent, fake_slack, fake_openai):
    fake_openai.script = lambda body: Reply(text=" ".join(f"w{i}" for i in range(200)), token_delay=0.05)
    agent, _web, editor, streams, ref, turn = await streaming_without_delivery(make_agent, fake_slack, "hi")
    await agent.run_async("hi", ref.conversation_id, message_id=turn)
    streams.start(ref, turn)
    await fake_slack.wait_for(lambda: any("w1" in m["text"] for m in fake_slack.bot_messages("C1", turn)))
    await agent.cancel(ref.conversation_id, by="U7")
    await fake_slack.wait_for(lambda: fake_slack.bot_messages("C1", turn)[0]["text"].endswith("._"))
    await until(lambda: streams.open_count == 0)
    [placeholder] = fake_slack.bot_messages("C1", turn)
    assert placeholder["text"].startswith("w0 w1") and "Thinking" not in placeholder["text"]
    assert placeholder["text"].endswith("_Run cancelled by <@U7>._")
    assert editor.open_count() == 0
    await editor.aclose()


async def test_a_placeholder_held_back_past_the_end_of_its_turn_is_not_posted(make_agent, fake_slack,
                                                                               fake_openai):
    fake_openai.script = lambda body: Reply(text="quick")
    agent, web, editor, streams, ref, turn = await streaming_without_delivery(make_agent, fake_slack, "hi")
    web.post_budgets.get("C1").pause(1.0)  # the channel's posts are spent for a second
    handle = await agent.run_async("hi", ref.conversation_id, message_id=turn)
    streams.start(ref, turn)
    await handle.result(timeout=20)
    await until(lambda: streams.open_count == 0)
    # The delivery (elsewhere) posts the answer itself: a placeholder now would stay beside it.
    assert fake_slack.count("chat.postMessage") == 0
    assert await streams.placeholder(ref.conversation_id, turn) is None
    await editor.aclose()
