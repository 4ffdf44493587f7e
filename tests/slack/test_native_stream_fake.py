"""The fake Slack API's streaming methods enforce what Slack documents (so the adapter's tests mean
something), and the pure helpers of native streaming: seams, code fences, the start budget."""

from __future__ import annotations

import pytest

from bots.slack.limits import ROLLOVER_RESERVE, StreamBudget
from bots.slack.stream_text import close_fence, cut_at, open_fence, reopen_fence
from bots.slack.web import SlackCallError, SlackWeb, make_client
from tests.fakes.slack_api import FakeSlack


async def test_the_fake_enforces_recipients_size_tiers_and_expiry(fake_slack: FakeSlack):
    web = SlackWeb(make_client(fake_slack.token, fake_slack.base_url))
    md = [{"type": "markdown_text", "text": "hi"}]
    with pytest.raises(SlackCallError) as exc:  # a channel needs the recipient
        await web.start_stream("C1", "1.1", md)
    assert exc.value.error == "invalid_arguments"
    assert await web.start_stream("D1", "1.1", md)  # a DM does not
    with pytest.raises(SlackCallError) as exc:
        await web.start_stream("C1", "1.1", [{"type": "markdown_text", "text": "x" * 12_001}], team="T1", user="U1")
    assert exc.value.error == "msg_too_long"
    fake_slack.stream_expiry = 0.0  # every stream has expired by its next call
    ts = await web.start_stream("C1", "1.1", md, team="T1", user="U1")
    with pytest.raises(SlackCallError) as exc:
        await web.append_stream("C1", ts, md)
    assert exc.value.error == "message_not_in_streaming_state"
    started = fake_slack.count("chat.startStream")
    for _ in range(fake_slack.stream_tier2 - started):
        await web.start_stream("D1", "1.1", md)
    with pytest.raises(SlackCallError) as exc:  # Tier 2: the 21st start in a minute
        await web.start_stream("D1", "1.1", md)
    assert exc.value.status == 429 and exc.value.retry_after and fake_slack.over_limit == 1
    fake_slack.refuse_streaming = "missing_scope"
    with pytest.raises(SlackCallError) as exc:
        await web.stop_stream("D1", ts)
    assert exc.value.error == "missing_scope"


def test_fences_and_seams():
    assert open_fence("text\n```python\nx = 1\n") == "```python"
    assert open_fence("```\na\n```\nafter") is None
    assert close_fence("```python") == "\n```" and reopen_fence("```python") == "```python\n"
    assert close_fence(None) == reopen_fence(None) == ""
    text = "line one\nline two\n" + "y" * 50
    assert cut_at(text, 30) == len("line one\nline two\n")  # back to the line break
    assert cut_at("z" * 5000, 3000) == 3000  # no line break near: exactly the room
    assert cut_at("short", 100) == 5


def test_the_start_budget_keeps_room_for_rollovers_and_remembers_a_refusal():
    budget = StreamBudget(start=5, stop=5, append=50, window=60.0)
    admitted = [budget.admit(now=100.0) for _ in range(5)]
    assert admitted == [True] * (5 - ROLLOVER_RESERVE) + [False] * ROLLOVER_RESERVE
    assert budget.admit(now=161.0)  # the window moved on
    budget.refused = "unknown_method"
    assert not budget.admit(now=500.0)
