"""A streamed turn whose end is delivered in the same process asks the workflow nothing.

Counted at the client's RPC layer, as on Slack (tests/slack/test_follow_queries.py): the live reply
ends with the final text on the bus or with this process's delivery, never by a ``turn`` query.
"""

from __future__ import annotations

from tests.fakes.openai_server import Reply
from tests.temporal_calls import counting_client

ANSWER = " ".join(f"w{i}" for i in range(30))


async def test_a_turn_delivered_here_costs_no_query(make_agent, temporal_config, fake_openai, fake_discord,
                                                    adapter):
    fake = fake_discord
    fake_openai.script = lambda body: Reply(text=ANSWER, token_delay=0.01)
    client, counter = await counting_client(temporal_config)
    agent = await make_agent(temporal=None, temporal_client=(client, temporal_config.task_queue))
    await adapter(agent)
    question = await fake.user_message("first")
    thread_id = int(question["id"])

    for turn in range(3):  # the mention that opens the thread, then replies in it
        if turn:
            await fake.user_message(f"again {turn}", channel_id=thread_id, mention=False)
        await fake.wait_for(lambda n=turn + 1: _answers(fake, thread_id) == [ANSWER] * n,
                            what=f"answer {turn + 1}")

    wid = agent.workflow_id(f"discord:{fake.guild_id}:{fake.channel_id}:{thread_id}")
    assert [c for c in counter.of(wid) if c.rpc == "query_workflow"] == []
    assert _answers(fake, thread_id) == [ANSWER] * 3  # each answer once, whole
    assert len(fake_openai.requests) == 3


def _answers(fake, thread_id: int) -> list[str]:
    return [m["content"] for m in fake.bot_messages(thread_id)]
