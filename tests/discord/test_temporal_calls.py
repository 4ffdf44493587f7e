"""How many calls to Temporal a Discord message costs the adapter, counted at the client's RPC layer.

A mention that opens a thread is one call (the update-with-start); a reply in a thread the bot opened
is one call, also after a restart when its conversation ended idle (the run that starts restores
what it knew); a reply in a thread the bot takes no part in is none.
"""

from __future__ import annotations

import asyncio
import dataclasses

from agent_core import AgentMode
from agent_core.types import timeouts_for
from tests.temporal_calls import counting_client

FOLLOW = ("turn",)  # a live stream's query of its turn, after the message was taken in
WORKER_SIDE = {"get_workflow_execution_history", "list_workflow_executions"}  # a run restoring itself


async def _counted(make_agent, temporal_config, **kwargs):
    client, counter = await counting_client(temporal_config)
    agent = await make_agent(temporal=None, temporal_client=(client, temporal_config.task_queue), **kwargs)
    return agent, counter


async def _answered(fake, counter, workflow_id: str, thread_id: int, answer: str, **message) -> list[str]:
    """Post a message and wait for the bot's answer; the calls about its conversation meanwhile."""
    before = len(counter.calls)
    await fake.user_message(**message)
    thread = thread_id or int(fake.threads()[-1]["id"])
    await fake.wait_for(lambda: any(m["content"] == answer for m in fake.bot_messages(thread)), what=answer)
    return [c.rpc for c in counter.calls[before:]
            if c.workflow_id == workflow_id and c.detail not in FOLLOW and c.rpc not in WORKER_SIDE]


async def test_a_thread_reply_is_one_call(make_agent, temporal_config, fake_openai, fake_discord, adapter):
    fake = fake_discord
    timeouts = dataclasses.replace(timeouts_for(AgentMode.INTERACTIVE), idle=1.0)
    agent, counter = await _counted(make_agent, temporal_config, timeouts=timeouts)
    first_adapter = await adapter(agent)
    before = len(counter.calls)
    question = await fake.user_message("my name is Ada")
    thread_id = int(question["id"])
    await fake.wait_for(lambda: any(m["content"] == "echo: my name is Ada" for m in fake.bot_messages(thread_id)))
    conv = f"discord:{fake.guild_id}:{fake.channel_id}:{thread_id}"
    wid = agent.workflow_id(conv)
    assert [c.rpc for c in counter.calls[before:]
            if c.workflow_id == wid and c.detail not in FOLLOW] == ["execute_multi_operation"]

    assert await _answered(fake, counter, wid, thread_id, "echo: what is my name?", content="what is my name?",
                           channel_id=thread_id, mention=False) == ["execute_multi_operation"]

    # A thread the bot takes no part in: one look-up on its first message (the bot may have been
    # mentioned there before a restart), none on the next ones, nothing started.
    other = await fake.user_thread("lunch", fake.bob)
    other_conv = f"discord:{fake.guild_id}:{fake.channel_id}:{other}"
    before = len(counter.calls)
    await fake.user_message("pizza?", channel_id=other, mention=False)
    await fake.user_message("pasta?", channel_id=other, mention=False)
    await fake.user_message("my name is Bob", channel_id=thread_id, mention=False)  # a marker: handled after
    await fake.wait_for(lambda: any(m["content"] == "echo: my name is Bob" for m in fake.bot_messages(thread_id)))
    assert [c.rpc for c in counter.calls[before:] if c.workflow_id == agent.workflow_id(other_conv)] == [
        "describe_workflow_execution"]
    assert fake.bot_messages(other) == []

    # After a restart, the conversation ended idle: the reply is still one call, and it goes on.
    await asyncio.wait_for(agent.handle(conv).result(), 30)
    await first_adapter.kill()
    agent2, counter2 = await _counted(make_agent, temporal_config, timeouts=timeouts)
    await adapter(agent2)
    assert await _answered(fake, counter2, wid, thread_id, "echo: and now?", content="and now?",
                           channel_id=thread_id, mention=False) == ["execute_multi_operation"]
    users = [m["content"] for m in fake_openai.requests[-1]["messages"] if m["role"] == "user"]
    assert users == ["my name is Ada", "what is my name?", "my name is Bob", "and now?"]
