"""A profile's mode: a turn under an autonomous profile runs with the autonomous timeouts (an approval
waits a day, model rounds and tools may run longer and wait for a worker, the conversation stays open a
week), the default profile keeps the agent's own; a changed mode applies from the next turn (a shorter
idle timeout re-arms at once: the ``profile-mode-idle`` patch, recorded with ``RECORD_HISTORIES``)."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime

from temporalio.worker import Replayer

from agent_core import AgentMode, timeouts_for
from agent_core.contract import LLM_ACTIVITY, TOOL_ACTIVITY
from agent_core.profiles import parse_profiles
from agent_core.worker import SANDBOXED_RUNNER
from agent_core.workflow import ConversationWorkflow
from tests.helpers import wait_for_approval
from tests.runtime.replay_gate import save
from tests.runtime.test_profiles import deploy, script

PROFILES = {"default": "chat", "profiles": {"chat": {}, "batch": {"mode": "autonomous", "slack_channels": ["C9"]}}}


def scheduled(history) -> list[tuple[str, float, float]]:
    """(activity, start-to-close, schedule-to-start) of every activity the run scheduled, in order."""
    out = []
    for e in history.events:
        if e.HasField("activity_task_scheduled_event_attributes"):
            a = e.activity_task_scheduled_event_attributes
            out.append((a.activity_type.name, a.start_to_close_timeout.ToSeconds(),
                        a.schedule_to_start_timeout.ToSeconds()))
    return out


async def approval_wait(agent, conv: str, text: str, profile) -> float:
    """About how long the turn's approval waits for a decision: its deadline less when it was asked
    (between the message and its card). Then approved, and the turn finished."""
    before = datetime.now(UTC)
    handle = await agent.run_async(text, conversation_id=conv, profile=profile)
    info = await agent.get_approval(conv, await wait_for_approval(handle))
    after = datetime.now(UTC)
    await agent.decide(conv, info.id, True, by="U1")
    await handle.result(30)
    deadline = datetime.fromisoformat(info.deadline)
    longest, shortest = (deadline - before).total_seconds(), (deadline - after).total_seconds()
    assert longest - shortest < 10
    return round(shortest)


async def test_an_autonomous_profile_runs_its_turns_with_the_autonomous_timeouts(make_agent, fake_openai):
    fake_openai.script = script
    profiles = parse_profiles(PROFILES)
    agent = await make_agent(tools=[deploy], profiles=profiles,
                             timeouts=replace(timeouts_for(AgentMode.INTERACTIVE), idle=1.0))
    batch, chat = profiles.get("batch").ref(agent.tools), profiles.get("chat").ref(agent.tools)
    assert batch.mode == "autonomous" and chat.mode is None

    assert 86_400 - 15 < await approval_wait(agent, "mode-batch", "deploy api", batch) <= 86_400  # not an hour
    assert 3_600 - 15 < await approval_wait(agent, "mode-chat", "deploy api", chat) <= 3_600

    # The chat conversation ends after the agent's 1 s idle; the batch one, idle longer, stays open.
    chat_run = agent.client.get_workflow_handle(agent.workflow_id("mode-chat"))
    await chat_run.result(rpc_timeout=None)
    batch_run = agent.client.get_workflow_handle(agent.workflow_id("mode-batch"))
    assert (await batch_run.describe()).status.name == "RUNNING"
    assert scheduled(await chat_run.fetch_history()) == [
        (LLM_ACTIVITY, 120, 60), (TOOL_ACTIVITY, 300, 60), (LLM_ACTIVITY, 120, 60)]

    # The profile changes to interactive: the next turn (and the conversation's idle) follows it.
    changed = parse_profiles({**PROFILES, "profiles": {"chat": {}, "batch": {"mode": "interactive"}}})
    assert changed.get("batch").version != profiles.get("batch").version
    await (await agent.run_async("hello", conversation_id="mode-batch",
                                 profile=changed.get("batch").ref(agent.tools))).result(30)
    await batch_run.result(rpc_timeout=None)  # ended idle after 1 s, the agent's own timeouts again
    history = await batch_run.fetch_history()
    assert scheduled(history) == [
        (LLM_ACTIVITY, 600, 0), (TOOL_ACTIVITY, 3600, 0), (LLM_ACTIVITY, 600, 0), (LLM_ACTIVITY, 120, 60)]
    if os.environ.get("RECORD_HISTORIES"):
        save("profile_mode", history)
    await Replayer(workflows=[ConversationWorkflow], workflow_runner=SANDBOXED_RUNNER).replay_workflow(history)
