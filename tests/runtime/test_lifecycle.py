"""A conversation ends after its idle timeout and a later message revives it with its context."""

from __future__ import annotations

from dataclasses import replace

from agent_core import AgentMode, timeouts_for
from agent_core.types import Carry


async def test_idle_end_then_revival_keeps_context(make_agent, fake_openai):
    timeouts = replace(timeouts_for(AgentMode.INTERACTIVE), idle=0.5)
    agent = await make_agent(timeouts=timeouts)
    await agent.run("remember 42", conversation_id="idle")
    carry = await agent.client.get_workflow_handle(agent.workflow_id("idle"), result_type=Carry).result()
    assert carry.turns == 1 and carry.next_seq == 2  # the run ended by itself, carrying its context
    assert await agent.status("idle") is None
    result = await agent.run("what did I say?", conversation_id="idle")
    assert result.text == "echo: what did I say?"
    sent = [m["content"] for m in fake_openai.requests[-1]["messages"]]
    assert sent == ["remember 42", "echo: remember 42", "what did I say?"]


async def test_status_reports_a_running_conversation(make_agent, fake_openai):
    agent = await make_agent()
    await agent.run("hi", conversation_id="status")
    st = await agent.status("status")
    assert st is not None and st.state == "idle" and st.turns == 1 and st.history_length > 0
    listed = await agent.list_conversations("stat")
    assert [c.conversation_id for c in listed] == ["status"]


async def test_a_finished_turn_is_read_from_the_ended_run(make_agent, fake_openai):
    timeouts = replace(timeouts_for(AgentMode.INTERACTIVE), idle=0.5)
    agent = await make_agent(timeouts=timeouts)
    first = await agent.run("remember 42", conversation_id="gone")
    await agent.handle("gone").result()  # the run ended for want of messages
    again = await agent.get_run("gone", first.turn_id).result(timeout=30)
    assert again.text == "echo: remember 42" and again.turn_id == first.turn_id
