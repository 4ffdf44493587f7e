"""Credentials and model-server error text stay where they belong: a DEBUG-level `durabot dev` run
with a password in REDIS_URL, an MCP server URL with credentials, and a model server whose error
bodies carry a marker. Chat sees a short reason; the log has the server's text but no credentials."""

from __future__ import annotations

import asyncio
import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.worker import Worker

from agent_core.errors import RunFailed
from workers.servers import find_binary, free_port, wait_for_port
from agent_core.types import Delivery, DeliveryTarget
from tests.fakes.mcp_server import HttpMCPServer
from tests.fakes.openai_server import Reply
from tests.procs.harness import Proc, settings_for, worker_env
from workers.app import build_agent

REDIS_PASSWORD = "redis-pa55-LEAKCHECK"
MCP_PASSWORD = "mcp-pa55-LEAKCHECK"
MARKER = "SERVER-BODY-MARKER-7f3a internal host db-7.corp:5432"


@pytest.fixture
def redis_with_password() -> Iterator[str]:
    port = free_port()
    cmd = [find_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--requirepass", REDIS_PASSWORD]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 10, proc)
        yield f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def http_mcp(tmp_path: Path) -> Iterator[HttpMCPServer]:
    server = HttpMCPServer(str(tmp_path / "notes.txt")).start()
    yield server
    server.stop()


def script(body: dict) -> Reply:
    """Turn 1 calls an MCP tool and answers; turn 2 meets a 503 (retried), then a 400 (not retried)."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text=f"sum {last['content']}")
    if last["content"] == "add":
        return Reply(tool_calls=[("web_add", {"a": 2, "b": 3})])
    retried = sum(1 for m in body["messages"] if m["role"] == "user" and m["content"] == "fail")
    if not script.failed.get(retried):  # type: ignore[attr-defined]
        script.failed[retried] = True  # type: ignore[attr-defined]
        return Reply(status=503, headers={"Retry-After": "0.1"}, error=f"overloaded: {MARKER}")
    return Reply(status=400, error=f"invalid request: {MARKER}")


async def test_debug_run_keeps_credentials_out_of_logs_and_server_text_out_of_chat(
        temporal_server, fake_openai, http_mcp, redis_with_password, task_queue, tmp_path: Path):
    mcp_url = f"http://mcpuser:{MCP_PASSWORD}@127.0.0.1:{http_mcp.port}/mcp"
    env = worker_env(temporal_server.address, task_queue, fake_openai.base_url, tmp_path,
                     DURABOT_LOG_LEVEL="DEBUG", REDIS_URL=redis_with_password,
                     DURABOT_MCP_SERVERS=f"web={mcp_url}", DURABOT_METRICS_PORT=str(free_port()))
    script.failed = {}  # type: ignore[attr-defined]
    fake_openai.script = script
    delivered: list[Delivery] = []

    @activity.defn(name="durabot.deliver")
    async def deliver(d: Delivery) -> None:
        delivered.append(d)

    dev = Proc(["dev", "--no-chat", "--data-dir", str(tmp_path / "data")], env, tmp_path / "dev.log")
    agent = build_agent(settings_for(env), local_worker=False)
    target = DeliveryTarget(task_queue=f"{task_queue}-out")
    try:
        dev.wait_for("Health and metrics", 60)  # printed once its worker polls
        await agent.start()
        async with Worker(agent.client, task_queue=target.task_queue, activities=[deliver]):
            result = await agent.run("add", conversation_id="leaks", deliver_to=target)
            assert result.text == "sum 5"
            with pytest.raises(RunFailed) as failed:
                await agent.run("fail", conversation_id="leaks", deliver_to=target)
            for _ in range(200):
                if any(d.kind == "turn_failed" for d in delivered):
                    break
                await asyncio.sleep(0.05)
    finally:
        await agent.close()
        dev.stop()
    (notice,) = [d for d in delivered if d.kind == "turn_failed"]
    for shown in (notice.text or "", str(failed.value)):
        assert "HTTP 400" in shown and "not retried" in shown and "worker log" in shown, shown
        assert "SERVER-BODY-MARKER" not in shown and "db-7.corp" not in shown
    output = (tmp_path / "dev.log").read_text()
    assert "DEBUG" in output  # verbose enough to have leaked
    assert f"Redis at redis://***@127.0.0.1:{redis_with_password.rsplit(':', 1)[1]}" in output
    assert MARKER in output  # the server's own text is in the worker log, for whoever debugs
    assert "HTTP 503" in output and "HTTP 400" in output
    basic = base64.b64encode(f"mcpuser:{MCP_PASSWORD}".encode()).decode()  # the Authorization header's form
    for secret in (REDIS_PASSWORD, MCP_PASSWORD, "mcpuser", basic):
        assert secret not in output, f"{secret!r} leaked into the output of durabot dev"
