"""``durabot worker`` with DURABOT_BUILD_ID, ``durabot status`` and ``durabot deploy status|promote``."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from tests.procs.harness import Proc, settings_for, worker_env
from workers.app import build_agent


def durabot(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "workers.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=Path.cwd())
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_status_of_an_unversioned_worker_names_its_derived_build(temporal_server, task_queue, tmp_path: Path):
    env = worker_env(temporal_server.address, task_queue, "http://127.0.0.1:1/v1", tmp_path)
    out = durabot(env, "status")
    assert f"task queue {task_queue!r}: build {version('durabot')}-" in out and "unversioned" in out
    assert "no versioned worker" in durabot(env, "deploy", "status")


async def test_builds_are_adopted_ramped_and_promoted(temporal_server, fake_openai, task_queue, tmp_path: Path):
    env_a = worker_env(temporal_server.address, task_queue, fake_openai.base_url, tmp_path, DURABOT_BUILD_ID="r1")
    env_b = dict(env_a, DURABOT_BUILD_ID="r2")
    first = Proc(["worker"], env_a, tmp_path / "a.log")
    second = None
    agent = None
    try:
        first.wait_for("is the first version of deployment", 30)  # nothing to promote by hand
        status = durabot(env_a, "deploy", "status")
        assert "current r1" in status and "r1: current" in status
        agent = build_agent(settings_for(env_a), local_worker=False)
        await agent.start()
        assert (await agent.run("one", conversation_id="cli-deploy")).text == "echo: one"
        out = durabot(env_a, "status", "cli-deploy")
        assert "build r1 (version" in out and "conversation 'cli-deploy': idle, 1 turn(s), on build r1" in out

        second = Proc(["worker"], env_b, tmp_path / "b.log")
        second.wait_for("make it current with: durabot deploy promote r2", 30)  # joins without taking over
        out = durabot(env_b, "deploy", "promote", "r2", "--ramp", "25")
        assert "ramping r2 at 25%" in out and "current r1, ramping r2 at 25%" in out
        out = durabot(env_b, "deploy", "promote", "r2")
        assert "r2 is current" in out and "current r2" in out
        refused = subprocess.run([sys.executable, "-m", "workers.cli", "deploy", "promote", "r9"], env=env_b,
                                 capture_output=True, text=True, timeout=60, cwd=Path.cwd())
        assert refused.returncode == 2
        assert "build 'r9' has no worker in deployment" in refused.stderr and "r1" in refused.stderr
    finally:
        if agent is not None:
            await agent.close()
        first.stop()
        if second is not None:
            second.stop()
