"""Replay recorded histories against the current workflow code: non-determinism fails here first.

``tests/histories/*.json`` were recorded from real runs (tools, an approval, a cancel, a queued message,
an idle end, sub-agents, continue-as-new). They stand for conversations already running in someone's
Temporal, so they are only ever added, never re-recorded over: ``SHA256SUMS`` pins each file, and a
change to the workflow that breaks one goes behind ``workflow.patched`` instead. A failure names the
history and the first mismatching event (replay_gate.py); the recorded set must cover every kind of
turn. To add histories of the current code, run this module with ``RECORD_HISTORIES=<label>`` (e.g.
the release): new files named ``<name>-<label>.json`` are written, never over an existing one; then
add them to SHA256SUMS (see tests/histories/README.md)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.converter import PayloadCodec
from temporalio.worker import Replayer

from agent_core import AgentMode, ToolContext, timeouts_for, tool
from agent_core.worker import SANDBOXED_RUNNER as _RUNNER  # replays check the sandbox's rules too
from agent_core.workflow import ConversationWorkflow
from tests.fakes.openai_server import Reply
from tests.runtime import replay_gate
from tests.runtime.replay_gate import HISTORIES, KINDS, ReplayMismatch, kinds, replay
from tests.runtime.replay_gate import save as _save

CHECKSUMS = HISTORIES / "SHA256SUMS"


@tool(requires_approval=True)
async def guarded(x: int, ctx: ToolContext) -> str:
    """Needs approval."""
    return f"guarded {x}"


@tool
async def plain(x: int) -> str:
    """Plain."""
    return f"plain {x}"


def script(body: dict) -> Reply:
    msgs = body["messages"]
    if msgs[-1]["role"] == "tool":
        return Reply(text="done: " + ", ".join(m["content"] for m in msgs if m["role"] == "tool"))
    text = msgs[-1]["content"]
    if "both" in text:
        return Reply(tool_calls=[("plain", {"x": 1}), ("guarded", {"x": 2})])
    return Reply(text=f"echo {text}")


async def record(agent, fake_openai) -> WorkflowHistory:
    fake_openai.script = script
    handle = await agent.run_async("use both", conversation_id="replay")
    approval = None
    while approval is None:
        st = await handle.progress((handle.last_status.milestone if handle.last_status else -1))
        approval = next((a.id for a in st.approvals if a.status == "pending"), None)
    await handle.approve(approval, by="tester")
    await handle.result(30)
    h2 = await agent.run_async("use both again", conversation_id="replay")
    while not any(a.status == "pending" for a in (await h2.status()).approvals):
        await asyncio.sleep(0.05)
    await h2.cancel(by="tester")
    h3 = await agent.run_async("plain talk", conversation_id="replay")
    await h3.result(30)
    wf = agent.client.get_workflow_handle(agent.workflow_id("replay"))
    await wf.result()  # idle end
    return await wf.fetch_history()


async def test_replay_of_a_fresh_history(make_agent, fake_openai):
    timeouts = replace(timeouts_for(AgentMode.INTERACTIVE), idle=1.0)
    agent = await make_agent(tools=[plain, guarded], timeouts=timeouts)
    history = await record(agent, fake_openai)
    if os.environ.get("RECORD_HISTORIES"):
        _save("tools_approval_cancel", history)
    await Replayer(workflows=[ConversationWorkflow], workflow_runner=_RUNNER).replay_workflow(history)


def test_recorded_histories_are_only_ever_added():
    """A history that was re-recorded (or deleted) would hide exactly the breakage replay is for."""
    pinned = dict(reversed(line.split(maxsplit=1)) for line in CHECKSUMS.read_text().splitlines() if line.strip())
    present = {p.name for p in HISTORIES.glob("*.json")}
    assert not (set(pinned) - present), f"recorded histories were removed: {sorted(set(pinned) - present)}"
    unpinned = sorted(present - set(pinned))
    assert not unpinned, f"add new histories to {CHECKSUMS.name} (sha256sum NAME >> {CHECKSUMS.name}): {unpinned}"
    changed = [name for name, digest in pinned.items()
               if hashlib.sha256((HISTORIES / name).read_bytes()).hexdigest() != digest]
    assert not changed, (
        f"recorded histories were rewritten: {changed}. They stand for running conversations: restore them "
        "(git checkout) and put the workflow change behind workflow.patched() instead"
    )


class _Plain(PayloadCodec):
    """No compression: a recorded history must replay without the codec."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)


async def test_replay_of_summaries_and_a_context_retry(make_agent, fake_openai, temporal_config):
    """A conversation whose older turns are summarised (twice, across a continue-as-new) and whose
    model once refuses a request as too long (the round goes again at half the budget)."""
    from agent_core.context import SUMMARY_INSTRUCTIONS

    def brief(body: dict) -> Reply:
        if SUMMARY_INSTRUCTIONS[:40] in (body["messages"][0].get("content") or ""):
            return Reply(text="Notes: small talk.")
        return Reply(text="ok")

    fake_openai.script = brief
    timeouts = replace(timeouts_for(AgentMode.INTERACTIVE), idle=1.0)
    agent = await make_agent(context_tokens=2_000, timeouts=timeouts, max_history_events=80,
                             temporal=replace(temporal_config, payload_codec=_Plain()))
    for i in range(22):
        await agent.run(f"turn {i} " + "words " * 120, conversation_id="replay-ctx")
    refused = []

    def refuse_once(body: dict) -> Reply:
        if body["messages"][-1]["content"] == "short" and not refused:
            refused.append(body)
            return Reply(status=400, code="context_length_exceeded", error="maximum context length exceeded")
        return brief(body)

    fake_openai.script = refuse_once  # one refusal, then the round goes again at half the budget
    assert (await agent.run("short", conversation_id="replay-ctx")).text == "ok"
    assert len(refused) == 1
    status = await agent.status("replay-ctx")
    assert status.summaries >= 2
    histories = []
    wid = agent.workflow_id("replay-ctx")
    await agent.client.get_workflow_handle(wid).result()  # idle end
    async for ex in agent.client.list_workflows(f"WorkflowId = '{wid}'"):
        histories.append(await agent.client.get_workflow_handle(wid, run_id=ex.run_id).fetch_history())
    assert len(histories) >= 2
    if os.environ.get("RECORD_HISTORIES"):
        for i, history in enumerate(histories):
            _save(f"context_{i}", history)
    replayer = Replayer(workflows=[ConversationWorkflow], workflow_runner=_RUNNER)
    for history in histories:
        await replayer.replay_workflow(history)


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_replay_of_recorded_histories(path: Path):
    await replay(path)  # fails naming the file and the first mismatching event


def test_recorded_histories_cover_every_kind_of_turn():
    """A release keeps one recorded conversation of each kind, read from the events themselves."""
    covered = {k: sorted(p.name for p in HISTORIES.glob("*.json") if k in kinds(replay_gate.load(p))) for k in KINDS}
    missing = [k for k, files in covered.items() if not files]
    assert not missing, f"no recorded history holds a {missing} turn: record one (tests/histories/README.md)"


async def test_a_breaking_change_fails_with_the_history_and_the_first_mismatching_event():
    from temporalio.worker import UnsandboxedWorkflowRunner

    from tests.runtime.altered_workflow import UnpatchedChange

    path = HISTORIES / "tools_approval_cancel.json"
    with pytest.raises(ReplayMismatch) as failed:
        await replay(path, workflows=[UnpatchedChange], runner=UnsandboxedWorkflowRunner())
    history = replay_gate.load(path)
    first_turn = next(e for e in history.events if e.HasField("activity_task_scheduled_event_attributes"))
    message = str(failed.value)
    # The timer the change adds meets the first model round the recorded run scheduled.
    assert message.startswith("tools_approval_cancel.json: ")
    assert f"first mismatching event {first_turn.event_id} (ACTIVITY_TASK_SCHEDULED durabot.llm_round)" in message


async def test_replay_of_a_plain_conversation(make_agent):
    """Turns answered without tools (the echo model), recorded as the "plain" kind."""
    agent = await make_agent(timeouts=replace(timeouts_for(AgentMode.INTERACTIVE), idle=1.0))
    for text in ("hello", "and again"):
        assert (await agent.run(text, conversation_id="replay-plain")).text
    wf = agent.client.get_workflow_handle(agent.workflow_id("replay-plain"))
    await wf.result()  # idle end
    history = await wf.fetch_history()
    assert kinds(history) == {"plain"}
    if os.environ.get("RECORD_HISTORIES"):
        _save("plain", history)
    await Replayer(workflows=[ConversationWorkflow], workflow_runner=_RUNNER).replay_workflow(history)


async def test_replay_of_delegation_and_continue_as_new(temporal_config, model, fake_openai):
    """Histories with child workflows, approvals raised to a parent, and a mid-turn continue-as-new."""
    from dataclasses import replace as dc_replace

    from agent_core import Agent

    def deleg_script(body: dict) -> Reply:
        msgs = body["messages"]
        who, last = msgs[0]["content"], msgs[-1]
        if last["role"] == "tool":
            return Reply(text=f"{who}: {last['content']}")
        if who == "lead":
            return Reply(tool_calls=[("ask_helper", {"task": last["content"]})])
        return Reply(tool_calls=[("guarded", {"x": 7})])

    fake_openai.script = deleg_script
    helper = Agent("helper", model=model, system_prompt="helper", tools=[guarded],
                   temporal=dc_replace(temporal_config, task_queue=temporal_config.task_queue + "-h"))
    lead = Agent("lead", model=model, system_prompt="lead", subagents=[helper], temporal=temporal_config,
                 max_history_events=20)
    async with lead:
        for i in range(2):
            handle = await lead.run_async(f"job {i}", conversation_id="replay-deleg")
            async for ev in handle.events():
                if ev.kind == "approval_requested":
                    await lead.decide("replay-deleg", ev.approval.id, True, by="t")
            assert (await handle.result(30)).text == "lead: helper: guarded 7"
        histories = []
        async for ex in lead.client.list_workflows("WorkflowType = 'DurabotConversation'"):
            if "replay-deleg" in ex.id and ex.status.name != "RUNNING":  # a run still open is not whole
                histories.append(await lead.client.get_workflow_handle(ex.id, run_id=ex.run_id).fetch_history())
    assert len(histories) >= 3  # the lead's closed runs (it continued as new) and two helper children
    if os.environ.get("RECORD_HISTORIES"):
        for i, history in enumerate(histories):
            _save(f"delegation_{i}", history)
    replayer = Replayer(workflows=[ConversationWorkflow], workflow_runner=_RUNNER)
    for history in histories:
        await replayer.replay_workflow(history)


async def test_replay_of_a_fresh_history_with_ratings(make_agent, fake_openai):
    """Ratings are updates that emit no command: a history holding them replays, across an idle end
    and a revival by a rating (update-with-start)."""
    timeouts = replace(timeouts_for(AgentMode.INTERACTIVE), idle=1.0)
    agent = await make_agent(tools=[plain, guarded], timeouts=timeouts)
    fake_openai.script = script
    turn = (await agent.run("plain talk", conversation_id="replay-rated")).turn_id
    await agent.rate("replay-rated", turn, "tester", "up")
    await agent.rate("replay-rated", turn, "tester", "down", "not what I asked")
    wf = agent.client.get_workflow_handle(agent.workflow_id("replay-rated"))
    first_run = (await wf.describe()).run_id
    await wf.result()  # idle end
    await agent.rate("replay-rated", turn, "other", "up")  # revives the conversation
    await wf.result()
    histories = [await agent.client.get_workflow_handle(wf.id, run_id=first_run).fetch_history(),
                 await wf.fetch_history()]
    if os.environ.get("RECORD_HISTORIES"):
        for i, history in enumerate(histories):
            _save(f"ratings_{i}", history)
    replayer = Replayer(workflows=[ConversationWorkflow], workflow_runner=_RUNNER)
    for history in histories:
        await replayer.replay_workflow(history)


async def test_replay_of_streamed_turns(make_agent, fake_openai):
    """Turns followed with ``Agent.stream`` (the submit_and_follow update): one that waits for an approval
    on the way, one without."""
    fake_openai.script = script
    agent = await make_agent(tools=[plain, guarded], timeouts=replace(timeouts_for(AgentMode.INTERACTIVE), idle=1.0))
    async for ev in agent.stream("use both", conversation_id="replay-stream"):
        if ev.kind == "approval_requested":
            await agent.decide("replay-stream", ev.approval.id, approved=True, by="tester")
    kinds_seen = [ev.kind async for ev in agent.stream("plain talk", conversation_id="replay-stream")]
    assert kinds_seen[-1] == "finished"
    wf = agent.client.get_workflow_handle(agent.workflow_id("replay-stream"))
    await wf.result()  # idle end
    history = await wf.fetch_history()
    assert {"tools", "approval"} <= kinds(history)
    if os.environ.get("RECORD_HISTORIES"):
        _save("streamed", history)
    await Replayer(workflows=[ConversationWorkflow], workflow_runner=_RUNNER).replay_workflow(history)
