"""Two Slack adapter processes behind one Slack app, as the shipped manifest runs them.

Events reach replica A, which posts the placeholders and streams the live edits (or, natively,
streams each answer with Slack's streaming methods); the final answers are delivered by
``durabot.deliver`` activities that either replica may run (both poll the same delivery task queue).
Every answer must end as exactly its final text, posted once, and A must let go of each stream when
its turn ends, whoever delivered it: its open-stream gauge returns to zero.
"""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import aiohttp
import pytest

from agent_core import AgentWorker
from tests.fakes.openai_server import Reply, last_user_text
from tests.fakes.slack_api import FakeSlack, SlackSender
from tests.procs.harness import Proc, settings_for, worker_env
from workers.app import build_agent

from .conftest import SECRET

TURNS = 5  # a batch
BATCHES = 4
WORDS = 40  # 1.2 s of stream: its final live text waits a second for its slot, after the delivery


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answer(question: str) -> str:
    n = re.sub(r"\D", "", question)
    return " ".join(f"a{n}w{i}" for i in range(WORDS))


async def metric(session: aiohttp.ClientSession, port: int, name: str, default: float | None = None,
                 **labels: str) -> float:
    """The sum of a metric's series (those with ``labels``) on a process's /metrics; ``default`` when
    there is none (a counter appears at its first increment)."""
    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    values = []
    for m in re.finditer(rf"^{name}(?:{{(.*)}})? (\S+)$", text, re.M):
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            values.append(float(m.group(2)))
    if not values:
        if default is not None:
            return default
        raise AssertionError(f"{name} {labels} not in the metrics of :{port}")
    return sum(values)


@pytest.mark.parametrize("mode", ["edits", "native"])
async def test_two_replicas_every_answer_ends_final_and_the_streaming_replica_lets_go(
        temporal_server, fake_openai, redis_server, task_queue, tmp_path: Path, fake_slack: FakeSlack, mode: str):
    # What replica B does when it delivers: edit a placeholder, or read the thread for A's stream.
    b_method = "chat.update" if mode == "edits" else "conversations.replies"
    fake_openai.script = lambda body: Reply(text=answer(last_user_text(body)), token_delay=0.03)
    ports = {name: (free_port(), free_port()) for name in "AB"}  # (events, metrics)
    base = worker_env(temporal_server.address, task_queue, fake_openai.base_url, tmp_path,
                      REDIS_URL=redis_server.url, SLACK_BOT_TOKEN=fake_slack.token, SLACK_SIGNING_SECRET=SECRET,
                      SLACK_API_URL=fake_slack.base_url, DURABOT_SLACK_STREAMING=mode)
    procs = {name: Proc(["slack", "--no-local-worker"],
                        {**base, "DURABOT_HTTP_PORT": str(http), "DURABOT_METRICS_PORT": str(metrics)},
                        tmp_path / f"slack-{name}.log")
             for name, (http, metrics) in ports.items()}
    agent = build_agent(settings_for(base), local_worker=False)  # the agent worker, in this process
    worker_task = None
    sender = SlackSender(f"http://127.0.0.1:{ports['A'][0]}/slack/events", SECRET, fake_slack.team)
    session = aiohttp.ClientSession()

    def diagnostics() -> str:
        calls = [(c.method, c.params.get("channel"), c.status, (c.params.get("text") or "")[-30:])
                 for c in fake_slack.calls if c.method.startswith("chat.")]
        logs = "\n".join(f"--- {p.log.name}\n" + p.log.read_text(errors="replace")[-2500:] for p in procs.values())
        return f"calls: {calls}\n{logs}"

    try:
        await agent.start()
        worker = AgentWorker(agent).build()
        worker_task = asyncio.create_task(worker.run())
        await asyncio.gather(*(asyncio.to_thread(p.wait_for, "Slack adapter listening on", 30)
                               for p in procs.values()))

        # Deliveries go to whichever replica polls first: turns come in batches until B has
        # delivered some (the first batch almost always suffices).
        threads: list[tuple[str, str, str]] = []
        for _ in range(BATCHES):
            for i in range(len(threads), len(threads) + TURNS):
                event = fake_slack.add_user_message(f"C{i}", f"<@{fake_slack.bot_user}> question {i}", "U1")
                event["type"] = "app_mention"
                event.pop("channel_type", None)
                threads.append((f"C{i}", event["ts"], answer(f"question {i}")))
                status, body = await sender.event(event)
                assert status == 200, body

            def all_final() -> bool:
                return all(any(m["text"] == text for m in fake_slack.bot_messages(ch, ts))
                           for ch, ts, text in threads)

            try:
                await fake_slack.wait_for(all_final, 40)
            except TimeoutError:
                raise AssertionError("not every answer arrived\n" + diagnostics()) from None
            if await metric(session, ports["B"][1], "durabot_platform_api_calls_total", 0.0, method=b_method):
                break

        # A follows no stream any more: it has written its last word to every thread.
        deadline = asyncio.get_running_loop().time() + 20
        while (open_now := await metric(session, ports["A"][1], "durabot_slack_open_streams")) > 0:
            assert asyncio.get_running_loop().time() < deadline, f"A still streams {open_now}\n" + diagnostics()
            await asyncio.sleep(0.1)  # polling a process's metrics: nothing to wait on in between

        for channel, ts, text in threads:
            mine = fake_slack.bot_messages(channel, ts)
            assert [m["text"] for m in mine] == [text], diagnostics()
            if mode == "edits":
                assert sum(1 for c in fake_slack.calls if c.method == "chat.postMessage"
                           and c.params.get("channel") == channel) == 1
            else:  # one stream, stopped, and nothing posted beside it
                assert mine[0]["streaming_state"] == "completed", diagnostics()
                assert not any(c.method == "chat.postMessage" and c.params.get("channel") == channel
                               for c in fake_slack.calls)
        by_b = await metric(session, ports["B"][1], "durabot_platform_api_calls_total", 0.0, method=b_method)
        by_a = await metric(session, ports["A"][1], "durabot_platform_api_calls_total", 0.0, method=b_method)
        print(f"{b_method} calls: A {by_a:g}, B {by_b:g}")
        assert by_b >= 1, "no answer was delivered by B: the test did not cover two replicas"
        assert fake_slack.over_limit == 0
    finally:
        await sender.close()
        await session.close()
        for p in procs.values():
            await asyncio.to_thread(p.stop)
        if worker_task is not None:
            worker_task.cancel()
            await asyncio.gather(worker_task, return_exceptions=True)
        await agent.close()
        await agent.event_bus.close()
