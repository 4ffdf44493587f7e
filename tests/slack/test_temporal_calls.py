"""How many calls to Temporal a Slack message costs the adapter, counted at the client's RPC layer.

A reply in a thread the adapter knows is one call (the update-with-start); a mention that opens a
thread is one call; a reply in a thread the bot takes no part in is one look-up and starts nothing;
after a restart (nothing known in memory) a reply to a conversation that ended idle is a look-up and
the update, and the conversation goes on with what it knew.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

from agent_core import AgentMode
from agent_core.types import timeouts_for
from bots.slack.ids import ThreadRef
from tests.fakes.openai_server import last_user_text
from tests.temporal_calls import counting_client
from workers.example_tools import EXAMPLE_TOOLS

FOLLOW = ("turn",)  # the live stream's query of its turn: after the message was taken in
WORKER_SIDE = {"get_workflow_execution_history", "list_workflow_executions"}  # a run restoring itself


async def _taken_in(h, counter, event: dict, workflow_id: str) -> list[str]:
    """Send the event; the calls about its conversation made until the adapter answered it (events
    are submitted before they are acknowledged)."""
    before = len(counter.calls)
    status, _ = await h.sender.event(event)
    assert status == 200
    return [c.rpc for c in counter.calls[before:]
            if c.workflow_id == workflow_id and c.detail not in FOLLOW and c.rpc not in WORKER_SIDE]


async def _counted(make_agent, temporal_config, **kwargs):
    client, counter = await counting_client(temporal_config)
    agent = await make_agent(tools=EXAMPLE_TOOLS, temporal=None,
                             temporal_client=(client, temporal_config.task_queue), **kwargs)
    return agent, counter


async def test_a_thread_reply_is_one_call(start_slack, make_agent, temporal_config, fake_openai):
    agent, counter = await _counted(make_agent, temporal_config)
    h = await start_slack(agent=agent)
    mention = h.mention_event("first")
    wid = agent.workflow_id(ThreadRef(h.fake.team, "C1", mention["ts"]).conversation_id)
    assert await _taken_in(h, counter, mention, wid) == ["execute_multi_operation"]  # opens its thread
    await h.final_reply("C1", mention["ts"], "echo: first")

    for text in ("second", "third"):
        reply = h.fake.add_user_message("C1", text, thread_ts=mention["ts"])
        assert await _taken_in(h, counter, reply, wid) == ["execute_multi_operation"]
        await h.final_reply("C1", mention["ts"], f"echo: {text}")

    # A reply in a thread the bot is not part of: one look-up, nothing started.
    other = h.fake.add_user_message("C1", "unrelated")
    chatter = h.fake.add_user_message("C1", "reply elsewhere", thread_ts=other["ts"])
    other_wid = agent.workflow_id(ThreadRef(h.fake.team, "C1", other["ts"]).conversation_id)
    assert await _taken_in(h, counter, chatter, other_wid) == ["describe_workflow_execution"]
    assert not await agent.has_run(ThreadRef(h.fake.team, "C1", other["ts"]).conversation_id)
    assert len(fake_openai.requests) == 3
    assert h.fake.bot_messages("C1", other["ts"]) == []


async def test_after_a_restart_a_reply_continues_a_conversation_that_ended_idle(
        start_slack, make_agent, temporal_config, fake_openai):
    timeouts = dataclasses.replace(timeouts_for(AgentMode.INTERACTIVE), idle=1.0)
    first_agent, _ = await _counted(make_agent, temporal_config, timeouts=timeouts)
    h = await start_slack(agent=first_agent)
    mention = await h.mention("my name is Ada")
    await h.final_reply("C1", mention["ts"], "echo: my name is Ada")
    conv = ThreadRef(h.fake.team, "C1", mention["ts"]).conversation_id
    await asyncio.wait_for(first_agent.handle(conv).result(), 30)  # the run ended idle

    # Another adapter process: nothing known in memory.
    agent, counter = await _counted(make_agent, temporal_config, timeouts=timeouts)
    h2 = await start_slack(agent=agent)
    reply = h2.fake.add_user_message("C1", "what is my name?", thread_ts=mention["ts"])
    calls = await _taken_in(h2, counter, reply, agent.workflow_id(conv))
    assert calls == ["describe_workflow_execution", "execute_multi_operation"]
    await h2.final_reply("C1", mention["ts"], "echo: what is my name?")
    users = [m["content"] for m in fake_openai.requests[-1]["messages"] if m["role"] == "user"]
    assert users == ["my name is Ada", "what is my name?"]  # the ended run's transcript was restored
    assert last_user_text(fake_openai.requests[-1]) == "what is my name?"

    again = h2.fake.add_user_message("C1", "and now?", thread_ts=mention["ts"])
    assert await _taken_in(h2, counter, again, agent.workflow_id(conv)) == ["execute_multi_operation"]
    await h2.final_reply("C1", mention["ts"], "echo: and now?")


async def test_a_mention_inside_an_existing_thread_starts_with_its_history(
        start_slack, make_agent, temporal_config, fake_openai):
    agent, counter = await _counted(make_agent, temporal_config)
    h = await start_slack(agent=agent)
    root = h.fake.add_user_message("C2", "we deploy on fridays", user="U7")
    event = h.mention_event("when do we deploy?", channel="C2", thread_ts=root["ts"])
    wid = agent.workflow_id(ThreadRef(h.fake.team, "C2", root["ts"]).conversation_id)
    # One look-up (no conversation there yet: its history is read), then the start.
    assert await _taken_in(h, counter, event, wid) == ["describe_workflow_execution", "execute_multi_operation"]
    await h.final_reply("C2", root["ts"], "echo: when do we deploy?")
    assert any("we deploy on fridays" in (m.get("content") or "") for m in fake_openai.requests[0]["messages"])


async def test_direct_messages_are_one_call_once_known(start_slack, make_agent, temporal_config):
    agent, counter = await _counted(make_agent, temporal_config)
    h = await start_slack(agent=agent)
    dm = f"D{uuid.uuid4().hex[:8].upper()}"  # a DM channel's conversation id is the channel's: unique per test
    wid = agent.workflow_id(ThreadRef(h.fake.team, dm, "").conversation_id)
    first = h.fake.add_user_message(dm, "hi in a DM")
    # The DM channel's conversation may have run before this process: looked up once.
    assert await _taken_in(h, counter, first, wid) == ["describe_workflow_execution", "execute_multi_operation"]
    await h.fake.wait_for(lambda: any("echo: hi in a DM" in m["text"] for m in h.fake.bot_messages(dm)))
    second = h.fake.add_user_message(dm, "and again")
    assert await _taken_in(h, counter, second, wid) == ["execute_multi_operation"]
    await h.fake.wait_for(lambda: any("echo: and again" in m["text"] for m in h.fake.bot_messages(dm)))
