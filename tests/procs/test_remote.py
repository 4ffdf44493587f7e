"""Client and worker in separate processes, joined by Temporal and Redis (started by the suite)."""

from __future__ import annotations

import asyncio
import json
import signal
from dataclasses import replace
from pathlib import Path

import pytest

from agent_core import AgentMode, FingerprintMismatch, timeouts_for
from agent_core.events import TextAccumulator, decode_event, stream_key
from workers.servers import RedisServer
from tests.fakes.openai_server import Reply, last_user_text
from tests.procs.harness import Proc, journal, settings_for, wait_until, worker_env
from workers.app import build_agent

LONG = " ".join(f"word{i}" for i in range(60))


@pytest.fixture
async def remote(temporal_server, fake_openai, redis_server, task_queue, tmp_path: Path):
    """A `durabot worker` process and a client agent in this process, both on Redis."""
    procs: list[Proc] = []
    agents = []

    def env(**extra: str) -> dict[str, str]:
        return worker_env(temporal_server.address, task_queue, fake_openai.base_url, tmp_path,
                          REDIS_URL=redis_server.url, **extra)

    def worker(name: str = "worker", **extra: str) -> Proc:
        p = Proc(["worker"], env(**extra), tmp_path / f"{name}.log")
        procs.append(p)
        p.wait_for("polling task queue")
        return p

    async def client(**extra: str):
        agent = build_agent(settings_for(env(**extra)), local_worker=False)
        agent.timeouts = replace(timeouts_for(AgentMode.INTERACTIVE), heartbeat=2.0)
        await agent.start()
        agents.append(agent)
        return agent

    yield worker, client, tmp_path
    for a in agents:
        await a.close()
    for p in procs:
        p.stop()


async def test_streamed_run_and_approval_across_processes(remote, fake_openai):
    worker, client, tmp = remote
    fake_openai.script = lambda b: (Reply(text=f"finished with {b['messages'][-1]['content']}", token_delay=0.04)
                                    if b["messages"][-1]["role"] == "tool"
                                    else Reply(tool_calls=[("guarded_step", {"name": "x"})]))
    worker()
    agent = await client()
    acc, kinds = TextAccumulator(), []
    async for ev in agent.stream("please", conversation_id="remote-approval", user="U1"):
        kinds.append(ev.kind)
        acc.feed(ev)
        if ev.kind == "approval_requested":
            await agent.decide("remote-approval", ev.approval.id, True, by="U2")
    assert kinds[-1] == "finished"
    assert acc.text == "finished with guarded x done"  # tokens came over Redis from the worker process
    assert kinds.count("token") >= 3 and "tool_started" in kinds and "approval_decided" in kinds
    assert len([l for l in journal(tmp) if l.startswith("guarded")]) == 1


async def test_worker_killed_mid_stream_and_mid_tool(remote, fake_openai, redis_server):
    worker, client, tmp = remote
    attempts: list[int] = []

    def script(body: dict) -> Reply:
        msgs = body["messages"]
        if msgs[-1]["role"] == "tool":
            attempts.append(1)
            return Reply(text=LONG, token_delay=0.05)  # ~3 s of streaming: time to kill the worker
        return Reply(tool_calls=[("slow_step", {"name": "s"})])

    fake_openai.script = script
    first = worker("w1")
    agent = await client()
    handle = await agent.run_async("go", conversation_id="kill-twice")
    # 1) killed mid-tool
    await asyncio.to_thread(wait_until, lambda: any(l.startswith("slow-start") for l in journal(tmp)), 30,
                            "the tool to start", first)
    first.kill()
    second = worker("w2")
    (tmp / "release").touch()
    # 2) killed mid-stream of the final round
    acc = TextAccumulator()
    retry_seen = asyncio.Event()
    tokens = 0
    final = asyncio.get_running_loop().create_future()

    async def follow() -> None:
        nonlocal tokens
        async for ev in agent.subscribe("kill-twice", handle.turn_id, idle_timeout=60):
            acc.feed(ev)
            tokens += ev.kind == "token"
            if ev.kind == "retry":
                retry_seen.set()
            if ev.kind == "round_finished" and ev.data.get("final"):
                final.set_result(acc.text)
                return

    follower = asyncio.create_task(follow())
    await asyncio.to_thread(wait_until, lambda: tokens >= 5, 30, "some tokens", second)
    second.kill()
    worker("w3")
    assert await asyncio.wait_for(final, 60) == LONG
    assert retry_seen.is_set() and len(attempts) >= 2
    result = await handle.result(30)
    assert result.text == LONG
    follower.cancel()


async def test_subscriber_process_restarts_from_its_offset(remote, fake_openai, redis_server):
    worker, client, tmp = remote
    fake_openai.script = lambda b: Reply(text=LONG, token_delay=0.04)
    worker()
    agent = await client()
    handle = await agent.run_async("stream", conversation_id="resume", message_id="resume-1")
    out = tmp / "seen.txt"
    key = stream_key("resume", "resume-1")
    sub = Proc([redis_server.url, key, str(out)], worker_env("", "", "", tmp), tmp / "sub1.log",
               module="tests.procs.subscriber")
    await asyncio.to_thread(wait_until, lambda: out.exists() and out.read_text().count("\ttoken\t") >= 10, 30,
                            "ten tokens", sub)
    sub.kill()
    last_offset = out.read_text().splitlines()[-1].split("\t")[0]
    sub2 = Proc([redis_server.url, key, str(out), last_offset], worker_env("", "", "", tmp), tmp / "sub2.log",
                module="tests.procs.subscriber")
    await asyncio.to_thread(wait_until, lambda: "END" in out.read_text(), 30, "the end of the stream", sub2)
    lines = [l for l in out.read_text().splitlines() if l != "END"]
    offsets = [l.split("\t")[0] for l in lines]
    assert len(offsets) == len(set(offsets))  # nothing seen twice
    acc = TextAccumulator()
    for line in lines:
        offset, _, raw = line.split("\t")
        data = json.loads(raw)
        data.pop("offset", None)
        ev = decode_event(json.dumps(data), offset)
        if ev.kind == "token":
            acc.feed(ev)
    assert acc.text == LONG
    assert (await handle.result(30)).text == LONG
    sub2.stop()


async def test_fingerprint_mismatch_fails_fast_and_says_what_differs(remote, fake_openai):
    worker, client, tmp = remote
    worker(DURABOT_TOOLS="tests.procs.journal_tools:quick_step")  # the worker lacks two tools
    agent = await client()
    with pytest.raises(FingerprintMismatch) as err:
        await agent.run("hi", conversation_id="mismatch")
    message = str(err.value)
    assert "tool 'slow_step' only on the client" in message
    assert "tool 'guarded_step' only on the client" in message
    assert "Redeploy" in message
    assert len(fake_openai.requests) == 0  # failed before calling the model


async def test_fingerprint_check_can_be_switched_off(remote, fake_openai):
    worker, client, tmp = remote
    worker(DURABOT_SYSTEM_PROMPT="a different prompt")
    agent = await client()
    with pytest.raises(FingerprintMismatch, match="the system prompt differs"):
        await agent.run("hi", conversation_id="prompt-mismatch")
    agent.fingerprint_check = False
    assert (await agent.run("hi", conversation_id="prompt-unchecked")).text == "echo: hi"


async def test_redis_stopped_during_a_run(temporal_server, fake_openai, task_queue, tmp_path):
    redis = RedisServer().start()
    env = worker_env(temporal_server.address, task_queue, fake_openai.base_url, tmp_path, REDIS_URL=redis.url)
    fake_openai.script = lambda b: Reply(text=LONG, token_delay=0.03)
    w = Proc(["worker"], env, tmp_path / "worker.log")
    agent = build_agent(settings_for(env), local_worker=False)
    try:
        w.wait_for("polling task queue")
        await agent.start()
        handle = await agent.run_async("talk", conversation_id="redis-down")
        seen = 0
        async for ev in agent.subscribe("redis-down", handle.turn_id, idle_timeout=30):
            seen += ev.kind == "token"
            if seen == 5:
                break
        redis.stop()
        result = await handle.result(60)
        assert result.text == LONG
        # a second turn needs the transcript, which now comes from the workflow's own copy
        fake_openai.script = lambda b: Reply(text=f"{len(b['messages'])} messages")
        assert (await agent.run("again", conversation_id="redis-down")).text == "4 messages"
        warnings = [l for l in (tmp_path / "worker.log").read_text().splitlines() if "unavailable" in l]
        assert 1 <= len(warnings) <= 3, warnings  # one per backend, not one per token
    finally:
        await agent.close()
        w.stop()
        redis.stop()


async def test_sigterm_drains_a_busy_worker(remote, fake_openai):
    worker, client, tmp = remote
    fake_openai.script = lambda b: (Reply(text="ok") if b["messages"][-1]["role"] == "tool"
                                    else Reply(tool_calls=[("slow_step", {"name": "drain"})]))
    w = worker()
    agent = await client()
    await agent.run_async("go", conversation_id="drain")
    await asyncio.to_thread(wait_until, lambda: any(l.startswith("slow-start") for l in journal(tmp)), 30,
                            "the tool to start", w)
    w.proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(w.wait_for, "draining")
    assert w.proc.poll() is None  # still finishing its activity
    (tmp / "release").touch()
    code = await asyncio.to_thread(w.proc.wait, 30)
    assert code == 0
    assert any(l.startswith("slow-done drain") for l in journal(tmp))
