"""A worker process killed with SIGKILL while a local tool runs (DURABOT_LOCAL_TOOLS): the local
activity's result was never recorded, so once the workflow task times out a new worker replays the
turn and runs the interrupted call again, with the same idempotency key; the local tool that had
finished in an earlier, completed workflow task is not run again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.api.enums.v1 import EventType

from agent_core.contract import TOOL_ACTIVITY
from tests.procs.harness import Proc, journal, settings_for, wait_until, worker_env
from tests.procs.test_worker_crash import three_step_script
from workers.app import build_agent


async def test_sigkill_during_a_local_tool_then_new_worker_runs_it_again(temporal_server, fake_openai, task_queue,
                                                                         tmp_path: Path):
    fake_openai.script = three_step_script
    env = worker_env(temporal_server.address, task_queue, fake_openai.base_url, tmp_path,
                     DURABOT_LOCAL_TOOLS="quick_step,slow_step")
    first = Proc(["worker"], env, tmp_path / "worker1.log")
    second = None
    agent = build_agent(settings_for(env), local_worker=False)
    try:
        first.wait_for("polling task queue")
        await agent.start()
        handle = await agent.run_async("run the steps", conversation_id="local-crash")
        await asyncio.to_thread(wait_until, lambda: any(l.startswith("slow-start") for l in journal(tmp_path)),
                                30, "the slow step to start", first)
        assert first.kill() == -9
        second = Proc(["worker"], env, tmp_path / "worker2.log")
        second.wait_for("polling task queue")
        # the dead worker's workflow task times out (10 s), then the new worker replays and runs it again
        await asyncio.to_thread(
            wait_until, lambda: sum(l.startswith("slow-start") for l in journal(tmp_path)) == 2, 60,
            "the slow step to run again", second)
        (tmp_path / "release").touch()
        result = await handle.result(60)
        assert result.text == "all done: quick one done; slow two done"
        lines = journal(tmp_path)
        quick = [l for l in lines if l.startswith("quick")]
        starts = [l.split()[2] for l in lines if l.startswith("slow-start")]
        assert len(quick) == 1, lines  # its workflow task had completed: not run again
        assert len(starts) == 2 and starts[0] == starts[1], lines  # run again with the same key
        assert [l for l in lines if l.startswith("slow-done")] == [f"slow-done two {starts[0]}"]
        history = await agent.handle("local-crash").fetch_history()
        tools = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                 and e.activity_task_scheduled_event_attributes.activity_type.name == TOOL_ACTIVITY]
        assert not tools  # both ran as local activities
        assert any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT for e in history.events)
    finally:
        await agent.close()
        first.stop()
        if second:
            second.stop()
