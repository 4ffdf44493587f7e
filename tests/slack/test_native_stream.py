"""Native streaming: an answer streamed with chat.startStream / appendStream / stopStream, finished
exactly once by the delivery, with tool calls as task cards and a fallback to edits."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from agent_core import tool
from tests.fakes.openai_server import Reply
from tests.fakes.slack_api import FakeSlack

from .conftest import Harness


@tool
async def lookup(key: str, seconds: float = 1.5) -> str:
    """Look a key up in a slow system."""
    await asyncio.sleep(seconds)  # the tool's own work takes this long (not a test's synchronisation)
    return f"value of {key}"


def streamed(fake: FakeSlack, channel: str, thread: str) -> list[dict]:
    return [m for m in fake.bot_messages(channel, thread) if "streaming_state" in m]


async def answered(h: Harness, channel: str, thread: str, text: str, timeout: float = 20.0) -> list[dict]:
    def done() -> list[dict] | None:
        msgs = h.fake.bot_messages(channel, thread)
        return msgs if msgs and all(m.get("streaming_state") != "in_progress" and "Thinking" not in m["text"]
                                    for m in msgs) and text in "".join(m["text"] for m in msgs) else None

    try:
        return await h.fake.wait_for(done, timeout)
    except TimeoutError:
        calls = [(c.method, c.status, c.error) for c in h.fake.calls]
        raise AssertionError(f"no finished answer; thread {h.fake.thread(channel, thread)}; calls {calls}") from None


async def test_an_answer_streams_natively_and_is_finished_once(start_slack, fake_openai):
    answer = " ".join(f"w{i}" for i in range(40))
    fake_openai.script = lambda body: Reply(text=answer, token_delay=0.02)
    h = await start_slack(DURABOT_SLACK_STREAMING="native")
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
    # The stopped stream ends with the answer's feedback buttons, as a delivered answer does.
    [buttons] = [el for b in msg.get("blocks") or [] if b.get("type") == "context_actions"
                 for el in b["elements"] if el.get("type") == "feedback_buttons"]
    assert event["ts"] in buttons["positive_button"]["value"]


def tool_then_answer(first: str, tool: str, args: dict, final: str, token_delay: float = 0.01):
    def script(body: dict) -> Reply:
        if body["messages"][-1]["role"] == "tool":
            return Reply(text=final, token_delay=token_delay)
        return Reply(text=first, tool_calls=[(tool, args)], token_delay=token_delay)
    return script


async def test_a_tool_call_is_a_task_card_in_the_stream(start_slack, make_agent, fake_openai):
    fake_openai.script = tool_then_answer("Let me look.", "lookup", {"key": "k1"}, "It is 42.")
    h = await start_slack(agent=await make_agent(tools=[lookup]), DURABOT_SLACK_STREAMING="native")
    event = await h.mention("what is k1?")
    [msg] = await answered(h, "C1", event["ts"], "It is 42.")
    assert msg["text"] == "Let me look.\n\nIt is 42."  # no "Tools:" line: the tool is a card
    statuses = [t["status"] for t in msg["task_log"]]
    assert statuses[0] == "in_progress" and statuses[-1] == "complete", msg["task_log"]
    [card] = msg["tasks"].values()
    assert card["title"] == "lookup" and card["output"] == "value of k1"
    assert h.fake.over_limit == 0 and h.fake.count("chat.postMessage") == 0


async def test_a_refusing_workspace_streams_by_edits_and_is_remembered(start_slack, fake_openai):
    fake_openai.script = lambda body: Reply(text="plain answer", token_delay=0.01)
    h = await start_slack(DURABOT_SLACK_STREAMING="native")
    h.fake.refuse_streaming = "not_allowed_token_type"
    first = await h.mention("one")
    await h.final_reply("C1", first["ts"], "plain answer")
    assert h.fake.count("chat.startStream") == 1  # refused once...
    second = await h.mention("two")
    await h.final_reply("C1", second["ts"], "plain answer")
    assert h.fake.count("chat.startStream") == 1  # ...and not asked again
    for event in (first, second):
        [msg] = h.fake.bot_messages("C1", event["ts"])
        assert msg["text"] == "plain answer" and "streaming_state" not in msg
        assert msg["metadata"]["event_payload"]["key"] == f"{event['ts']}:0"


async def test_edits_mode_by_setting_never_streams(start_slack, fake_openai):
    fake_openai.script = lambda body: Reply(text="edited answer", token_delay=0.01)
    h = await start_slack(DURABOT_SLACK_STREAMING="edits")
    event = await h.mention("hi")
    await h.final_reply("C1", event["ts"], "edited answer")
    assert not any(c.method.endswith("Stream") for c in h.fake.calls)
    assert h.fake.count("chat.postMessage") == 1 and h.fake.count("chat.update") >= 1


def test_an_unknown_streaming_mode_is_a_usage_error():
    import pytest

    from agent_core.errors import UserError
    from bots.slack.settings import SlackSettings

    assert SlackSettings().streaming_mode == "native"
    assert SlackSettings(streaming="Edits").streaming_mode == "edits"
    with pytest.raises(UserError, match="DURABOT_SLACK_STREAMING"):
        _ = SlackSettings(streaming="fast").streaming_mode


def fence_lines(text: str) -> int:
    return sum(1 for line in text.split("\n") if line.strip().startswith("```"))


def long_answer(size: int) -> str:
    """Prose and fenced code blocks, so that seams fall both in prose and inside code."""
    parts, i = [], 0
    while sum(len(p) for p in parts) < size:
        parts.append(f"Paragraph {i}: " + " ".join(f"word{i}-{j}" for j in range(60)) + "\n\n")
        parts.append("```python\n" + "".join(f"x_{i}_{j} = {j} * {j}  # line {j}\n" for j in range(300)) + "```\n\n")
        i += 1
    return "".join(parts) + "The end."


async def test_a_60000_character_answer_rolls_over_with_fences_balanced_and_nothing_lost(start_slack, fake_openai):
    answer = long_answer(60_000)
    assert 60_000 <= len(answer) < 70_000 and fence_lines(answer) % 2 == 0
    tokens = [answer[i:i + 400] for i in range(0, len(answer), 400)]
    fake_openai.script = lambda body: Reply(tokens=tokens, token_delay=0.005)
    h = await start_slack(DURABOT_SLACK_STREAMING="native")
    event = await h.mention("write a lot")
    msgs = await answered(h, "C1", event["ts"], "The end.", timeout=40)
    assert len(msgs) >= 6 and all(m["streaming_state"] == "completed" for m in msgs)
    keys = [m["metadata"]["event_payload"]["key"] for m in msgs]
    assert keys == [f"{event['ts']}:s{i}" for i in range(len(msgs))]
    texts = [m["text"] for m in msgs]
    assert all(len(t) <= 12_000 for t in texts)
    assert all(fence_lines(t) % 2 == 0 for t in texts), [fence_lines(t) for t in texts]
    # Take the seams' closing and reopening fences away again: the answer, whole and once. (Seams
    # fall after a line break, so a message that ends in a bare fence was closed at the seam.)
    joined = texts[0]
    seams_in_code = 0
    for prev, text in zip(texts, texts[1:]):
        if prev.endswith("\n```"):
            assert text.startswith("```python\n"), text[:40]
            joined, text = joined.removesuffix("\n```"), text.removeprefix("```python\n")
            seams_in_code += 1
        joined += text
    assert joined == answer
    assert seams_in_code >= 1  # the answer is mostly code: some seams fall inside a block
    assert h.fake.over_limit == 0 and h.fake.count("chat.postMessage") == 0 and h.fake.count("chat.update") == 0


async def test_an_approval_card_stays_a_card_and_the_answer_streams_after_it(start_slack, fake_openai):
    from .test_approvals_and_commands import card_of, click

    def script(body: dict) -> Reply:
        if body["messages"][-1]["role"] == "tool":
            return Reply(text=f"done: {body['messages'][-1]['content']}", token_delay=0.01)
        return Reply(text="I will deploy web.", tool_calls=[("deploy", {"service": "web"})], token_delay=0.01)

    fake_openai.script = script
    h = await start_slack(DURABOT_SLACK_STREAMING="native")
    h.adapter.streams.limits = replace(h.adapter.streams.limits, max_age=1.0)  # a slow approver outlives it
    event = await h.mention("deploy web")
    message, (approve, _deny) = await h.fake.wait_for(lambda: card_of(h, "C1", event["ts"]))
    assert "streaming_state" not in message and "Approval needed" in message["text"]  # a card, as before
    try:
        await h.fake.wait_for(lambda: streamed(h.fake, "C1", event["ts"])
                              and streamed(h.fake, "C1", event["ts"])[0]["streaming_state"] == "completed")
    except TimeoutError:
        raise AssertionError(f"{h.fake.thread('C1', event['ts'])} {[(c.method, c.error) for c in h.fake.calls]}")
    await click(h, message, approve, "U1")
    msgs = await answered(h, "C1", event["ts"], "done: Deployed web")
    parts = streamed(h.fake, "C1", event["ts"])
    assert parts[0]["text"] == "I will deploy web."  # stopped while the card waited
    assert "done: Deployed web" in parts[-1]["text"] and parts[-1]["tasks"]  # the tool, as a card, then the answer
    assert sum("done: Deployed web" in m["text"] for m in msgs) == 1
    assert h.fake.over_limit == 0
