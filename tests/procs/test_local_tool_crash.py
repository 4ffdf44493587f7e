"""A worker process killed with SIGKILL while a local tool runs (DURABOT_LOCAL_TOOLS): the local
activity's result was never recorded, so once the workflow task times out a new worker replays the
turn and runs the interrupted call again, with the same idempotency key; the local tool that had
finished in an earlier, completed workflow task is not run again."""

from __future__ import annotations

from pathlib import Path

from temporalio.api.enums.v1 import EventType

from agent_core.contract import TOOL_ACTIVITY
from tests.procs.harness import settings_for, worker_env
from tests.procs.test_worker_crash import crash_mid_slow_step, three_step_script
from workers.app import build_agent


async def test_sigkill_during_a_local_tool_then_new_worker_runs_it_again(temporal_server, fake_openai, task_queue,
                                                                         tmp_path: Path):
    fake_openai.script = three_step_script
    env = worker_env(temporal_server.address, task_queue, fake_openai.base_url, tmp_path,
                     DURABOT_LOCAL_TOOLS="quick_step,slow_step")
    agent = build_agent(settings_for(env), local_worker=False)
    try:
        # the dead worker's workflow task times out (10 s), then the new worker replays and runs it again
        await crash_mid_slow_step(env, tmp_path, agent, "local-crash", again_within=60)
        history = await agent.handle("local-crash").fetch_history()
        tools = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                 and e.activity_task_scheduled_event_attributes.activity_type.name == TOOL_ACTIVITY]
        assert not tools  # both ran as local activities
        assert any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT for e in history.events)
    finally:
        await agent.close()
