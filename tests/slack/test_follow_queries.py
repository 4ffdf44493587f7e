"""A streamed turn whose end is delivered in the same process asks the workflow nothing.

The live follow learns the end from this process's ``durabot.deliver`` activity (bots/core/follow.py),
not from ``turn`` queries, each a billable Temporal Cloud action. Counted at the client's RPC layer,
for both ways Slack streams an answer; the answer is still the delivery's, posted once. (Without a
local delivery the follow still ends by its queries: tests/slack/test_stream_end.py.)
"""

from __future__ import annotations

import pytest

from bots.slack.ids import ThreadRef
from tests.fakes.openai_server import Reply
from tests.temporal_calls import counting_client
from workers.example_tools import EXAMPLE_TOOLS

from .test_stream_end import until

ANSWER = " ".join(f"w{i}" for i in range(30))


@pytest.mark.parametrize("streaming", ["edits", "native"])
async def test_a_turn_delivered_here_costs_no_query(streaming, start_slack, make_agent, temporal_config,
                                                    fake_openai):
    fake_openai.script = lambda body: Reply(text=ANSWER, token_delay=0.01)
    client, counter = await counting_client(temporal_config)
    agent = await make_agent(tools=EXAMPLE_TOOLS, temporal=None,
                             temporal_client=(client, temporal_config.task_queue))
    h = await start_slack(agent=agent, DURABOT_SLACK_STREAMING=streaming)
    mention = await h.mention("first")
    wid = agent.workflow_id(ThreadRef(h.fake.team, "C1", mention["ts"]).conversation_id)

    for turn in range(3):  # the mention that opens the thread, then replies in it
        if turn:
            reply = h.fake.add_user_message("C1", f"again {turn}", thread_ts=mention["ts"])
            assert (await h.sender.event(reply))[0] == 200
        await h.fake.wait_for(lambda n=turn + 1: _answers(h, mention["ts"]) == [ANSWER] * n, 20)
        await until(lambda: h.adapter.streams.open_count == 0)  # the follow is over: it asks nothing more
        assert _answers(h, mention["ts"]) == [ANSWER] * (turn + 1)  # each answer once, whole

    queries = [c for c in counter.of(wid) if c.rpc == "query_workflow"]
    assert queries == []
    assert len(fake_openai.requests) == 3


def _answers(h, thread: str) -> list[str]:
    """The bot's finished messages in the thread (a native stream's once stopped)."""
    return [m["text"] for m in h.fake.bot_messages("C1", thread) if m.get("streaming_state") != "in_progress"]
