"""A worker process killed with SIGKILL in the middle of a turn with a file: a new worker reads the
file from the shared blob store again, the turn finishes, and the tool's file reaches the result."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
from pathlib import Path

from agent_core import AgentMode, timeouts_for
from tests.fakes.openai_server import Reply, image_parts
from tests.files.samples import png
from tests.procs.harness import Proc, journal, settings_for, wait_until, worker_env
from workers.app import build_agent


async def test_sigkill_mid_file_turn_then_new_worker_finishes(temporal_server, fake_openai, task_queue,
                                                             tmp_path: Path):
    def script(body: dict) -> Reply:
        if body["messages"][-1]["role"] == "tool":
            return Reply(text=f"done: {body['messages'][-1]['content']}")
        if len(fake_openai.requests) == 1:
            return Reply(text="never seen", ttft=8)  # the worker dies while it waits
        return Reply(tool_calls=[("table_step", {"rows": 3})])

    fake_openai.script = script
    env = worker_env(temporal_server.address, task_queue, fake_openai.base_url, tmp_path,
                     DURABOT_BLOB_URL=str(tmp_path / "blobs"))
    first = Proc(["worker"], env, tmp_path / "worker1.log")
    second = None
    agent = build_agent(settings_for(env), local_worker=False)  # the same blob store as the workers
    agent.timeouts = replace(timeouts_for(AgentMode.INTERACTIVE), heartbeat=1.0)
    image = png(4, 4)
    try:
        first.wait_for("polling task queue")
        await agent.start()
        ref = await agent.attach(image, "chart.png")
        handle = await agent.run_async("what does the chart show?", conversation_id="file-crash",
                                       attachments=[ref])
        await asyncio.to_thread(wait_until, lambda: len(fake_openai.requests) >= 1, 30, "the first model call",
                                first)
        assert first.kill() == -9
        second = Proc(["worker"], env, tmp_path / "worker2.log")
        second.wait_for("polling task queue")
        result = await handle.result(60)
        assert result.text == "done: made 3 rows\n[attached table.csv (text/csv, 8 bytes)]"
        uri = f"data:image/png;base64,{base64.b64encode(image).decode()}"
        # Every model call, the one cut short by the crash and those after it, saw the image.
        assert all(image_parts(r) == [uri] for r in fake_openai.requests)
        assert len(fake_openai.requests) >= 3
        assert [f.name for f in result.files] == ["table.csv"]
        assert await agent.blobs.get(result.files[0]) == b"n\n0\n1\n2\n"
        assert len([l for l in journal(tmp_path) if l.startswith("table")]) == 1
    finally:
        await agent.close()
        first.stop()
        if second:
            second.stop()
