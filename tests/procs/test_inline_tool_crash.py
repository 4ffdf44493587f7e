"""A worker process killed with SIGKILL while a local tool runs inside a model round's activity (local
tools, Redis store): the activity's next attempt, on a new worker, resumes from the round checkpoints.
The model is not asked again for the rounds that had answered, the finished tool is not run again, the
interrupted one runs again with the same idempotency key, and the turn has one answer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from temporalio.api.enums.v1 import EventType

from agent_core import AgentMode, timeouts_for
from agent_core.contract import LLM_ACTIVITY
from tests.procs.harness import settings_for, worker_env
from tests.procs.test_worker_crash import crash_mid_slow_step, three_step_script
from workers.app import build_agent


async def test_sigkill_during_an_inline_tool_resumes_from_the_checkpoints(temporal_server, fake_openai, redis_server,
                                                                           task_queue, tmp_path: Path):
    fake_openai.script = three_step_script
    env = worker_env(temporal_server.address, task_queue, fake_openai.base_url, tmp_path,
                     DURABOT_LOCAL_TOOLS="quick_step,slow_step", REDIS_URL=redis_server.url)
    agent = build_agent(settings_for(env), local_worker=False)
    agent.timeouts = replace(timeouts_for(AgentMode.INTERACTIVE), heartbeat=1.0)  # the dead worker, noticed fast
    try:
        await crash_mid_slow_step(env, tmp_path, agent, "inline-crash", again_within=30)
        # Round 0 (quick step), round 1 (slow step), each asked once; round 2 after the release.
        assert len(fake_openai.requests) == 3, [m["role"] for r in fake_openai.requests for m in r["messages"]]
        history = await agent.handle("inline-crash").fetch_history()
        scheduled = [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
                     if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
        assert scheduled == [LLM_ACTIVITY]  # the whole turn in one model-round activity
        started = [e.activity_task_started_event_attributes.attempt for e in history.events
                   if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]
        assert started == [2]  # its second attempt finished it
    finally:
        await agent.close()
