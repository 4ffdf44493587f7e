"""Inputs that once pushed a payload past Temporal's 2 MB limit and stuck the conversation for good.

Each drives a real conversation (real Temporal, the fake model server) through a continue-as-new
and shows the next turn still works, and that no event of the histories comes near the limit. The
agents here encode payloads without compression: these texts compress well and would hide the sizes.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Sequence

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from agent_core import tool
from agent_core.limits import PAYLOAD_LIMIT
from tests.fakes.openai_server import Reply, echo_script

BIG = 32_000


class Uncompressed(PayloadCodec):
    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)


@pytest.fixture
def make_agent(make_agent, temporal_config):
    async def make(**kwargs):
        # A model with room for everything: these tests are about Temporal's payload limits, not the model's.
        kwargs.setdefault("context_tokens", 10_000_000)
        return await make_agent(temporal=replace(temporal_config, payload_codec=Uncompressed()), **kwargs)

    return make


@tool
async def big(i: int) -> str:
    """A tool with a 32 KB answer."""
    return f"{i:05d}:" + "x" * (BIG - 12) + f":{i:05d}"


async def runs_and_largest_event(agent, conversation_id: str) -> tuple[list[str], int]:
    wid = agent.workflow_id(conversation_id)
    statuses, largest = [], 0
    async for ex in agent.client.list_workflows(f"WorkflowId = '{wid}'"):
        statuses.append(ex.status.name)
        history = await agent.client.get_workflow_handle(wid, run_id=ex.run_id).fetch_history()
        largest = max([largest, *(e.ByteSize() for e in history.events)])
    return statuses, largest


async def test_seventy_tool_outputs_of_32_kb(make_agent, fake_openai):
    def script(body: dict) -> Reply:
        last = body["messages"][-1]
        if last["role"] == "tool":
            return Reply(text=f"read {sum(m['role'] == 'tool' for m in body['messages'])} outputs")
        if last["content"] == "fetch":
            return Reply(tool_calls=[("big", {"i": i}) for i in range(70)])
        return echo_script(body)

    fake_openai.script = script
    agent = await make_agent(tools=[big], max_history_events=40, context_chars=10_000_000)
    first = await asyncio.wait_for(agent.run("fetch", conversation_id="sizes-tools"), 90)
    assert first.text == "read 70 outputs"
    tools_seen = [m["content"] for m in fake_openai.requests[-1]["messages"] if m["role"] == "tool"]
    assert tools_seen[-1].endswith(":00069") and len(tools_seen[-1]) == BIG  # the newest ones whole
    assert "cut to save room" in tools_seen[0]  # the oldest gave way to stubs, and say so
    second = await asyncio.wait_for(agent.run("ping", conversation_id="sizes-tools"), 60)
    assert second.text == "echo: ping"
    statuses, largest = await runs_and_largest_event(agent, "sizes-tools")
    assert "CONTINUED_AS_NEW" in statuses
    assert largest < PAYLOAD_LIMIT // 2, largest


async def test_twenty_messages_of_20000_accented_characters(make_agent, fake_openai):
    agent = await make_agent(max_history_events=150)
    text = "é" * 20_000  # 120 KB once Temporal's JSON escapes it
    for i in range(20):
        result = await asyncio.wait_for(agent.run(f"{i} {text}", conversation_id="sizes-accents"), 60)
        assert result.text == f"echo: {i} {text}"
    result = await asyncio.wait_for(agent.run("ping", conversation_id="sizes-accents"), 60)
    assert result.text == "echo: ping"
    statuses, largest = await runs_and_largest_event(agent, "sizes-accents")
    assert "CONTINUED_AS_NEW" in statuses
    assert largest < PAYLOAD_LIMIT // 2, largest


async def test_one_message_of_100000_emoji(make_agent, fake_openai):
    agent = await make_agent(max_history_events=10)
    result = await asyncio.wait_for(agent.run("😀" * 100_000, conversation_id="sizes-emoji"), 60)
    sent = fake_openai.requests[-1]["messages"][-1]["content"]
    assert sent.startswith("😀" * 1000) and "[message cut to fit: " in sent  # cut, with a note
    assert len(json.dumps(sent)) <= 128 * 1024
    assert result.text == f"echo: {sent}"
    result = await asyncio.wait_for(agent.run("ping", conversation_id="sizes-emoji"), 60)
    assert result.text == "echo: ping"
    statuses, largest = await runs_and_largest_event(agent, "sizes-emoji")
    assert "CONTINUED_AS_NEW" in statuses
    assert largest < PAYLOAD_LIMIT // 2, largest


async def test_messages_from_other_clients_are_bounded_in_the_workflow(make_agent, fake_openai):
    """A client that skips the SDK's own cut: the workflow cuts the text itself and refuses bad ids."""
    from temporalio.client import WorkflowUpdateFailedError

    from agent_core.types import UserMessage
    from agent_core.workflow import ConversationWorkflow

    agent = await make_agent(max_history_events=10)
    await agent.run("hello", conversation_id="sizes-foreign")
    handle = agent.client.get_workflow_handle(agent.workflow_id("sizes-foreign"))
    try:
        await handle.execute_update(ConversationWorkflow.submit, UserMessage(id="i" * 300, text="hi"))
        raise AssertionError("a 300-character message id was accepted")
    except WorkflowUpdateFailedError as exc:
        assert "message id is 300 characters long" in str(exc.cause)
    progress = await asyncio.wait_for(handle.execute_update(
        ConversationWorkflow.submit_and_wait, UserMessage(id="big", text="ü" * 300_000)), 60)  # 1.8 MB
    assert progress.turn.state == "finished" and "[message cut to fit: 300000 characters" in progress.turn.text
    result = await asyncio.wait_for(agent.run("ping", conversation_id="sizes-foreign"), 60)
    assert result.text == "echo: ping"
    statuses, _ = await runs_and_largest_event(agent, "sizes-foreign")
    assert "CONTINUED_AS_NEW" in statuses


async def test_the_store_keeps_whole_messages_and_a_lost_store_leaves_notes(make_agent, fake_openai):
    """The window is only a byte-bounded fallback: the model reads whole messages from the store, and
    when the store lost them, the window's stubs say what was cut."""
    from agent_core import InMemoryTranscriptStore

    store = InMemoryTranscriptStore()
    agent = await make_agent(store=store, context_chars=10_000_000)
    text = "é" * 20_000
    for i in range(6):
        await asyncio.wait_for(agent.run(f"{i} {text}", conversation_id="sizes-lost"), 60)
    sent = [m["content"] for m in fake_openai.requests[-1]["messages"]]
    assert sent[0] == f"0 {text}" and len(sent) == 11  # all whole, though the window holds stubs
    store.forget("sizes-lost")
    result = await asyncio.wait_for(agent.run("ping", conversation_id="sizes-lost"), 60)
    assert result.text == "echo: ping"
    sent = [m["content"] for m in fake_openai.requests[-1]["messages"]]
    assert len(sent) == 13 and "[cut to save room: 20002 characters in all" in sent[0]
    assert sent[-3:] == [f"5 {text}", f"echo: 5 {text}", "ping"]


async def test_a_long_thread_context_is_cut_to_its_newest_messages(make_agent, fake_openai):
    from agent_core import ChatMessage

    agent = await make_agent()
    context = [ChatMessage(role="user", content=f"{i} " + "ß" * 5_000, name="someone") for i in range(100)]  # 3 MB
    result = await asyncio.wait_for(agent.run("and now?", conversation_id="sizes-ctx", context=context), 60)
    assert result.text == "echo: and now?"
    sent = [m["content"] for m in fake_openai.requests[-1]["messages"]]
    assert sent[0].startswith("[") and "earlier thread message(s) left out" in sent[0]
    assert sent[-2] == f"99 {'ß' * 5_000}" and sent[-1] == "and now?"  # the newest kept whole


def test_approval_arguments_are_bounded_by_bytes():
    from agent_core.types import ApprovalInfo

    from agent_core.limits import APPROVAL_ARGUMENTS_BYTES

    info = ApprovalInfo(id="a1", turn_id="t", tool="deploy", arguments=json.dumps({"note": "ü" * 20_000},
                                                                                   ensure_ascii=False),
                        requested_by="u")
    assert len(json.dumps(info.arguments)) <= APPROVAL_ARGUMENTS_BYTES and "[arguments cut to fit" in info.arguments
    whole = json.dumps({"note": "ü" * 1_000}, ensure_ascii=False)  # what an approver's Show all needs
    assert ApprovalInfo(id="a2", turn_id="t", tool="deploy", arguments=whole, requested_by="u").arguments == whole
