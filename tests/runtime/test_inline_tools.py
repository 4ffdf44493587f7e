"""A model round that asks only for local tools needing no approval runs them inside its own activity
and makes the next round there too (patch ``inline-tools``; round checkpoints in the Redis store): a
one-tool turn is two workflow tasks and one activity. Mixed rounds, approvals, cancel, the turn's
round limit and the token budget behave as they do without it; the recorded history replays."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import replace

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.worker import Replayer

from agent_core import AgentMode, RunCancelled, ToolContext, timeouts_for, tool
from agent_core.contract import LLM_ACTIVITY, TOOL_ACTIVITY
from agent_core.redis_backend import RedisTranscriptStore
from agent_core.types import BudgetScope
from agent_core.worker import SANDBOXED_RUNNER
from agent_core.workflow import INLINE_TOOLS_PATCH, ConversationWorkflow
from bench.turn_cost import cost, turns
from tests.fakes.openai_server import Reply
from tests.helpers import wait_for_approval
from tests.runtime.replay_gate import save as save_history
from tests.runtime.test_local_tools import calls, fetch, lookup  # the same tools, one call log


@tool(requires_approval=True)
async def guarded(key: str, ctx: ToolContext) -> str:
    """Look a key up once someone allowed it."""
    calls.append(f"guarded {key} {ctx.idempotency_key}")
    return f"guarded {key}"


def script(body: dict) -> Reply:
    msgs = body["messages"]
    if msgs[-1]["role"] == "tool":
        return Reply(text="done: " + ", ".join(m["content"] for m in msgs[-2:] if m["role"] == "tool"))
    text = msgs[-1]["content"]
    if "both" in text:
        return Reply(tool_calls=[("lookup", {"key": "a"}), ("fetch", {"key": "b"})])
    if "guarded" in text:
        return Reply(tool_calls=[("guarded", {"key": "g"})])
    return Reply(text="looking", tool_calls=[("lookup", {"key": "c"})])


@pytest.fixture
async def store(redis_server):
    s = RedisTranscriptStore(redis_server.url, prefix=f"t-{uuid.uuid4().hex[:8]}:")
    yield s


def _scheduled(events) -> list[str]:
    return [e.activity_task_scheduled_event_attributes.activity_type.name for e in events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]


def _turn(events, n: int) -> list:
    """The events of the n-th update's turn, up to that update's completion (not the idle end after)."""
    part = turns(list(events))[n]
    done = [i for i, e in enumerate(part) if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED]
    return part[:done[0] + 1]


def _idle(seconds: float = 1.0):
    return replace(timeouts_for(AgentMode.INTERACTIVE), idle=seconds)


async def test_a_one_tool_turn_is_two_workflow_tasks_and_one_activity(make_agent, fake_openai, store):
    calls.clear()
    fake_openai.script = script
    agent = await make_agent(tools=[lookup, fetch], local_tools=["lookup"], store=store, timeouts=_idle())
    first = await agent.run("just the lookup", conversation_id="inline-1")
    assert first.text == "done: value of c"
    second = await agent.run("use both", conversation_id="inline-1")  # mixed: as without inlining
    assert second.text == "done: value of a, fetched b"
    third = await agent.run("again just the lookup", conversation_id="inline-1")
    assert third.text == "done: value of c"
    assert sorted(c.split()[0] for c in calls) == ["fetch", "lookup", "lookup", "lookup"], calls
    assert len({c.split()[2] for c in calls}) == 4  # each call once, each with its own key
    wf = agent.client.get_workflow_handle(agent.workflow_id("inline-1"))
    await wf.result()  # idle end
    history = await wf.fetch_history()
    one, mixed, again = (_turn(history.events, n) for n in range(3))
    for turn in (one, again):
        c = cost(turn)
        assert (c.workflow_tasks, c.activity_tasks, c.local_activities) == (2, 1, 0), c.line()
        assert _scheduled(turn) == [LLM_ACTIVITY]
    assert cost(again).event_count <= 12, cost(again).kinds()
    c = cost(mixed)  # lookup as a local activity beside fetch, then the last round
    assert (c.activity_tasks, c.local_activities) == (3, 1), c.line()
    assert _scheduled(mixed) == [LLM_ACTIVITY, TOOL_ACTIVITY, LLM_ACTIVITY]
    markers = [e.marker_recorded_event_attributes for e in history.events
               if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
               and e.marker_recorded_event_attributes.marker_name == "core_patch"]
    assert any(INLINE_TOOLS_PATCH.encode() in m.details["patch-data"].payloads[0].data for m in markers)
    # The transcript is the one the separate path makes: the next round saw call and result.
    fake_openai.script = lambda b: Reply(text=" | ".join(f"{m['role']}:{m.get('content')}" for m in b["messages"]))
    seen = await agent.run("what happened?", conversation_id="inline-1")
    assert seen.text.startswith("user:just the lookup | assistant:looking | tool:value of c | assistant:done: value of c"), seen.text
    if os.environ.get("RECORD_HISTORIES"):
        save_history("inline_tools", history)
    await Replayer(workflows=[ConversationWorkflow], workflow_runner=SANDBOXED_RUNNER).replay_workflow(history)


async def test_a_local_tool_needing_approval_asks_then_runs_inline_once_allowed(make_agent, fake_openai, store):
    calls.clear()
    fake_openai.script = script
    agent = await make_agent(tools=[lookup, guarded], local_tools=["lookup", "guarded"], store=store,
                             timeouts=_idle(3.0))
    h1 = await agent.run_async("use guarded", conversation_id="inline-approve")
    await agent.decide("inline-approve", await wait_for_approval(h1), True, by="tester", scope="thread")
    assert (await h1.result(30)).text == "done: guarded g"
    wf = agent.client.get_workflow_handle(agent.workflow_id("inline-approve"))
    before = len((await wf.fetch_history()).events)
    # Allowed for the thread: not asked again (an approval would hold the turn past the wait).
    again = await asyncio.wait_for(agent.run("use guarded again", conversation_id="inline-approve"), 30)
    assert again.text == "done: guarded g"
    assert [c.split()[0] for c in calls] == ["guarded", "guarded"]
    await wf.result()
    history = await wf.fetch_history()
    # The first turn: its round, the approval, the tool as a local activity, the last round; the
    # second: one activity, in two workflow tasks.
    assert _scheduled(history.events) == [LLM_ACTIVITY] * 3
    assert cost(history.events).local_activities == 1
    allowed = list(history.events)[before:]
    done = [i for i, e in enumerate(allowed) if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED]
    allowed = allowed[:done[0] + 1]
    assert cost(allowed).workflow_tasks == 2 and _scheduled(allowed) == [LLM_ACTIVITY], cost(allowed).kinds()
    if os.environ.get("RECORD_HISTORIES"):
        save_history("inline_allowance", history)
    await Replayer(workflows=[ConversationWorkflow], workflow_runner=SANDBOXED_RUNNER).replay_workflow(history)


async def test_cancel_during_an_inline_tool_ends_the_turn_at_once(make_agent, fake_openai, store):
    started, release = asyncio.Event(), asyncio.Event()
    runs: list[str] = []

    @tool
    async def long_job(ctx: ToolContext) -> str:
        """A job that waits to be released."""
        runs.append(ctx.idempotency_key)
        started.set()
        await asyncio.wait_for(release.wait(), 20)
        return "job done"

    fake_openai.script = lambda b: (Reply(text="after tool") if b["messages"][-1]["role"] == "tool"
                                    else Reply(tool_calls=[("long_job", {})]))
    agent = await make_agent(tools=[long_job], local_tools=["long_job"], store=store)
    handle = await agent.run_async("start the job", conversation_id="inline-cancel")
    await asyncio.wait_for(started.wait(), 10)
    asked = time.monotonic()
    await handle.cancel(by="admin")
    with pytest.raises(RunCancelled, match="cancelled by admin"):
        await handle.result(15)
    assert time.monotonic() - asked < 1.5  # the turn does not wait for the tool
    release.set()
    assert len(runs) == 1
    fake_openai.script = lambda b: Reply(text=" | ".join(f"{m['role']}:{m.get('content')}" for m in b["messages"]))
    result = await agent.run("still there?", conversation_id="inline-cancel")
    # The workflow never received the round that asked for the tool: no call without its answer.
    assert result.text == "user:start the job | user:still there?", result.text


async def test_the_round_limit_and_the_budget_stop_hold(make_agent, fake_openai, store):
    calls.clear()

    def always_a_tool(body: dict) -> Reply:
        if not body.get("tools"):
            return Reply(text="out of rounds", usage=(10, 10))
        return Reply(text="more", tool_calls=[("lookup", {"key": str(len(body["messages"]))})], usage=(100, 50))

    fake_openai.script = always_a_tool
    agent = await make_agent(tools=[lookup], local_tools=["lookup"], store=store, max_iterations=3)
    handle = await agent.run_async("loop", conversation_id="inline-limit")
    assert (await handle.result(30)).text == "out of rounds"
    st = await handle.status()
    assert len(fake_openai.requests) == 4 and len(calls) == 3  # rounds 0-2 with the tool, round 3 without
    assert st.tool_calls == ["lookup"] * 3 and (st.prompt_tokens, st.completion_tokens) == (310, 160)
    history = await agent.handle("inline-limit").fetch_history()
    assert _scheduled(history.events) == [LLM_ACTIVITY]

    calls.clear()
    fake_openai.requests.clear()
    budget = BudgetScope(f"u-{uuid.uuid4().hex[:6]}", f"c-{uuid.uuid4().hex[:6]}", 400, None)
    handle = await agent.run_async("loop", conversation_id="inline-budget", budget=budget)
    result = await handle.result(30)
    # Rounds 0 and 1 (150 tokens each) stay within 400; round 2 crosses it: its tool does not run.
    assert result.text.startswith("more\n\nStopped here"), result.text
    assert len(fake_openai.requests) == 3 and len(calls) == 2
    history = await agent.handle("inline-budget").fetch_history()
    assert _scheduled(history.events) == [LLM_ACTIVITY]


async def test_without_a_checkpoint_store_the_tool_runs_as_a_local_activity(make_agent, fake_openai):
    from workers.servers import free_port

    calls.clear()
    fake_openai.script = script
    down = RedisTranscriptStore(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    agent = await make_agent(tools=[lookup], local_tools=["lookup"], store=down)
    result = await asyncio.wait_for(agent.run("just the lookup", conversation_id="inline-down"), 30)
    assert result.text == "done: value of c" and len(calls) == 1
    history = await agent.handle("inline-down").fetch_history()
    # Each round is sent twice (the store lost the transcript: the workflow resends its window); the
    # round asking for the tool went back to the workflow, which ran it as a local activity.
    assert _scheduled(history.events) == [LLM_ACTIVITY] * 4
    assert cost(history.events).local_activities == 1


async def test_inline_rounds_select_within_the_token_budget(make_agent, fake_openai, store):
    calls.clear()
    fake_openai.script = script
    fake_openai.context_limit = 2_000  # a request over it is refused as too long
    agent = await make_agent(tools=[lookup], local_tools=["lookup"], store=store, context_tokens=2_000)
    await agent.run("FIRST: remember this", conversation_id="inline-ctx")
    filler = " ".join(f"word{i}" for i in range(400))
    for n in range(4):
        result = await agent.run(f"turn {n}: just the lookup {filler}", conversation_id="inline-ctx")
        assert result.text == "done: value of c"
    history = await agent.handle("inline-ctx").fetch_history()
    scheduled = _scheduled(history.events)  # (summaries of older turns may come in between)
    assert scheduled.count(LLM_ACTIVITY) == 5 and TOOL_ACTIVITY not in scheduled  # tools inside the rounds
    assert cost(history.events).local_activities == 0
    assert fake_openai.overflows == 0 and max(fake_openai.request_tokens) <= 2_000
    # The older turns no longer fit; the first request is still sent (pinned), in the rounds after
    # the tool as well.
    second_rounds = [r for r in fake_openai.requests if r["messages"][-1]["role"] == "tool"]
    assert len(second_rounds) == 5
    assert all(any("FIRST" in str(m.get("content")) for m in r["messages"]) for r in second_rounds)
    assert not any("turn 0" in str(m.get("content")) for m in fake_openai.requests[-1]["messages"])
    status = await agent.status("inline-ctx")
    assert 0 < status.context_tokens <= 2_000
