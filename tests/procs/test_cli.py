"""The command line: configuration errors stop start-up with one clear line; Temporal outages."""

from __future__ import annotations

import asyncio
import os
import re
import site
import subprocess
import sys
from pathlib import Path

import pytest

from agent_core import Agent, TemporalConfig
from agent_core.errors import TemporalUnavailable
from workers.servers import TemporalDevServer, free_port
from tests.fakes.openai_server import Reply
from tests.procs.harness import Proc, settings_for, worker_env
from workers.app import build_agent


@pytest.mark.parametrize("env,expected", [
    ({"DURABOT_APPROVAL": "sometimes"}, "DURABOT_APPROVAL='sometimes' is not one of: marked, all, none"),
    ({"DURABOT_TOOLS": "no_such_pkg.tools"}, "DURABOT_TOOLS: cannot import module 'no_such_pkg.tools'"),
    ({"DURABOT_TOOLS": "workers.example_tools:nothing"}, "has no attribute 'nothing'"),
    ({"TEMPORAL_ADDRESS": "just-a-host"}, "TEMPORAL_ADDRESS='just-a-host' is not host:port"),
    ({"DURABOT_HTTP_PORT": "http"}, "DURABOT_HTTP_PORT='http' is not a port number"),
])
def test_bad_configuration_is_one_clear_line(env, expected, tmp_path: Path):
    full = worker_env("127.0.0.1:1", "q", "http://127.0.0.1:1/v1", tmp_path, **env)
    proc = subprocess.run([sys.executable, "-m", "workers.cli", "worker"], env=full, capture_output=True,
                          text=True, timeout=60, cwd=Path.cwd())
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("durabot: configuration error: ") and expected in lines[0]


def test_dev_without_the_dev_extra_names_the_extra(tmp_path: Path):
    # An install without the dev extra: an interpreter whose bin directory and PATH hold no `temporal`.
    (tmp_path / "bin").mkdir()
    python = tmp_path / "bin" / "python"
    python.symlink_to(sys.executable)
    env = worker_env(f"127.0.0.1:{free_port()}", "q", "http://127.0.0.1:1/v1", tmp_path, PATH="/usr/bin:/bin")
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), *site.getsitepackages()])
    args = [str(python), "-m", "workers.cli", "dev", "--no-chat", "--data-dir", str(tmp_path / "d")]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, cwd=Path.cwd())
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("durabot: configuration error: 'temporal' not found: "
                           "it comes with durabot's 'dev' extra")
    assert "pip install 'durabot[dev]'" in line


async def test_client_gets_a_clear_error_quickly_when_temporal_is_down(model):
    agent = Agent("down", model=model, temporal=TemporalConfig(host="127.0.0.1", port=free_port()))
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(TemporalUnavailable, match="cannot connect to Temporal"):
        await agent.start()
    assert loop.time() - start < 5


async def test_worker_waits_for_temporal_and_reconnects(fake_openai, task_queue, tmp_path: Path):
    port = free_port()
    db = str(tmp_path / "temporal.db")
    env = worker_env(f"127.0.0.1:{port}", task_queue, fake_openai.base_url, tmp_path,
                     DURABOT_TOOLS="workers.example_tools")
    worker = Proc(["worker"], env, tmp_path / "worker.log")
    server = None
    agent = None
    try:
        worker.wait_for("retrying in")  # started before the server: waits instead of dying
        server = TemporalDevServer(port=port, db_file=db).start()
        worker.wait_for("polling task queue", 60)
        agent = build_agent(settings_for(env), local_worker=False)
        await agent.start()
        assert (await agent.run("one", conversation_id="outage")).text == "echo: one"
        server.stop()  # the server goes away under a connected worker ...
        server = TemporalDevServer(port=port, db_file=db).start()  # ... and comes back with its data
        fake_openai.script = lambda b: Reply(text=f"{len(b['messages'])} messages")
        result = await asyncio.wait_for(agent.run("two", conversation_id="outage"), 90)
        assert result.text == "4 messages"  # system prompt, then the whole conversation
        assert worker.proc.poll() is None
    finally:
        if agent:
            await agent.close()
        worker.stop()
        if server:
            server.stop()


async def test_durabot_run_is_autonomous_and_prints_the_answer(temporal_server, fake_openai, task_queue, tmp_path):
    fake_openai.script = lambda b: (Reply(text=f"final: {b['messages'][-1]['content']}")
                                    if b["messages"][-1]["role"] == "tool"
                                    else Reply(tool_calls=[("guarded_step", {"name": "nightly"})]))
    env = worker_env(temporal_server.address, task_queue, fake_openai.base_url, tmp_path)
    run = subprocess.Popen([sys.executable, "-m", "workers.cli", "run", "do the nightly job", "--conversation",
                            "cli-run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = await asyncio.to_thread(_read_until, run.stderr, "waiting for approval")
        approval_id = re.search(r"durabot approve cli-run (a[0-9a-f]{12})\b", line).group(1)
        approve = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "workers.cli", "approve", "cli-run", approval_id, "--by", "ops"],
            env=env, capture_output=True, text=True, timeout=60)
        assert approve.returncode == 0 and "guarded_step: approved by ops" in approve.stdout
        out, _ = await asyncio.to_thread(run.communicate, timeout=60)
        assert run.returncode == 0
        assert out.strip() == "final: guarded nightly done"
    finally:
        if run.poll() is None:
            run.kill()


def _read_until(stream, text: str) -> str:
    for line in stream:
        if text in line:
            return line
    raise AssertionError(f"{text!r} never printed")
