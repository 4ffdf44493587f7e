"""A worker process killed with SIGKILL mid-tool: a new worker finishes the turn, completed tools are
not run again, and the interrupted one is retried with the same idempotency key."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from agent_core import Agent, AgentMode, timeouts_for
from tests.fakes.openai_server import Reply
from tests.procs.harness import Proc, journal, settings_for, wait_until, worker_env
from workers.app import build_agent


def three_step_script(body: dict) -> Reply:
    tool_msgs = [m for m in body["messages"] if m["role"] == "tool"]
    if not tool_msgs:
        return Reply(tool_calls=[("quick_step", {"name": "one"})])
    if len(tool_msgs) == 1:
        return Reply(tool_calls=[("slow_step", {"name": "two"})])
    return Reply(text="all done: " + "; ".join(m["content"] for m in tool_msgs))


async def crash_mid_slow_step(env: dict[str, str], tmp_path: Path, agent: Agent, conversation_id: str,
                              again_within: float) -> list[str]:
    """The three-step turn on one ``durabot worker`` process, SIGKILLed once the slow step started, then
    finished by a second one: the completed quick step is not run again, the slow one runs again with
    the same idempotency key and completes once. The journal's lines; the agent stays open."""
    first = Proc(["worker"], env, tmp_path / "worker1.log")
    second = None
    try:
        first.wait_for("polling task queue")
        await agent.start()
        handle = await agent.run_async("run the steps", conversation_id=conversation_id)
        await asyncio.to_thread(wait_until, lambda: any(l.startswith("slow-start") for l in journal(tmp_path)),
                                30, "the slow step to start", first)
        assert first.kill() == -9
        second = Proc(["worker"], env, tmp_path / "worker2.log")
        second.wait_for("polling task queue")
        await asyncio.to_thread(
            wait_until, lambda: sum(l.startswith("slow-start") for l in journal(tmp_path)) == 2, again_within,
            "the slow step to run again", second)
        (tmp_path / "release").touch()
        result = await handle.result(60)
        assert result.text == "all done: quick one done; slow two done"
        lines = journal(tmp_path)
        quick = [l for l in lines if l.startswith("quick")]
        starts = [l.split()[2] for l in lines if l.startswith("slow-start")]
        assert len(quick) == 1, lines  # completed before the crash: not run again
        assert len(starts) == 2 and starts[0] == starts[1], lines  # run again with the same key
        assert [l for l in lines if l.startswith("slow-done")] == [f"slow-done two {starts[0]}"]
        return lines
    finally:
        first.stop()
        if second:
            second.stop()


async def test_sigkill_mid_tool_then_new_worker_finishes(temporal_server, fake_openai, task_queue, tmp_path: Path):
    fake_openai.script = three_step_script
    env = worker_env(temporal_server.address, task_queue, fake_openai.base_url, tmp_path)
    agent = build_agent(settings_for(env), local_worker=False)
    agent.timeouts = replace(timeouts_for(AgentMode.INTERACTIVE), heartbeat=1.0)
    try:
        await crash_mid_slow_step(env, tmp_path, agent, "crash", again_within=30)
    finally:
        await agent.close()
