"""A real `durabot worker` process: health endpoints, metrics after a real turn, no secrets in logs,
and a trace of one turn from the client's message to the delivery."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from workers.servers import free_port
from agent_core.types import Delivery, DeliveryTarget
from tests.fakes.openai_server import Reply
from tests.procs.harness import Proc, settings_for, wait_until, worker_env
from workers.app import build_agent

SECRETS = {
    "OPENAI_API_KEY": "sk-test-0123456789abcdefSECRET",
    "SLACK_BOT_TOKEN": "xoxb-1111-2222-SECRETSLACK",
    "SLACK_SIGNING_SECRET": "signing-SECRET-3333",
    "DISCORD_BOT_TOKEN": "discord.SECRET.token-4444",
    "TEMPORAL_API_KEY": "",
}


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.text()


async def test_worker_health_metrics_and_clean_logs(temporal_server, fake_openai, task_queue, tmp_path: Path):
    port = free_port()
    env = worker_env(temporal_server.address, task_queue, fake_openai.base_url, tmp_path,
                     DURABOT_METRICS_PORT=str(port), DURABOT_LOG_LEVEL="DEBUG",
                     **{k: v for k, v in SECRETS.items() if v})
    fake_openai.script = lambda b: (Reply(text="done: " + b["messages"][-1]["content"])
                                    if b["messages"][-1]["role"] == "tool"
                                    else Reply(tool_calls=[("quick_step", {"name": "m"})]))
    worker = Proc(["worker"], env, tmp_path / "worker.log")
    agent = build_agent(settings_for(env), local_worker=False)
    try:
        worker.wait_for("polling task queue")
        assert await get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
        assert (await get(f"http://127.0.0.1:{port}/readyz"))[0] == 200
        await agent.start()
        result = await agent.run("go", conversation_id="ops-metrics")
        assert result.text == "done: quick m done"
        status, text = await get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert 'durabot_tool_calls_total{outcome="ok",tool="quick_step"} 1.0' in text
        assert 'durabot_llm_tokens_total{kind="completion"}' in text
        assert "durabot_first_token_seconds_count 1.0" in text
        assert 'durabot_turns{' in text and 'outcome="finished"' in text  # from the workflow's meter
        assert "temporal_workflow_task" in text or "temporal_request" in text  # the SDK's own metrics
        logs = (tmp_path / "worker.log").read_text()
        assert "DEBUG" in logs  # the log is verbose enough to have leaked something
        for name, value in SECRETS.items():
            if value:
                assert value not in logs, f"{name} leaked into the log"
    finally:
        await agent.close()
        worker.stop()
    # after the process is gone, nothing answers
    await asyncio.to_thread(wait_until, lambda: worker.proc.poll() is not None, 10, "the worker to exit")


async def test_trace_of_one_turn_from_message_to_delivery(temporal_config, model, fake_openai, task_queue):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from temporalio import activity
    from temporalio.contrib.opentelemetry import TracingInterceptor
    from temporalio.worker import Worker

    from agent_core import Agent

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    temporal_config.interceptors = (TracingInterceptor(provider.get_tracer("test")),)
    delivered = asyncio.Event()

    @activity.defn(name="durabot.deliver")
    async def deliver(d: Delivery) -> None:
        if d.kind == "turn_finished":
            delivered.set()

    agent = Agent("traced", model=model, temporal=temporal_config)
    async with agent:
        async with Worker(agent.client, task_queue=f"{task_queue}-out", activities=[deliver]):
            await agent.run("hello", conversation_id="traced",
                            deliver_to=DeliveryTarget(task_queue=f"{task_queue}-out"))
            await asyncio.wait_for(delivered.wait(), 20)
    names = [s.name for s in exporter.get_finished_spans()]
    for expected in ("StartUpdateWithStartWorkflow:DurabotConversation", "HandleUpdate:submit", "RunWorkflow:DurabotConversation",
                     "StartActivity:durabot.llm_round", "RunActivity:durabot.llm_round",
                     "StartActivity:durabot.deliver", "RunActivity:durabot.deliver"):
        assert any(n.startswith(expected) for n in names), (expected, sorted(set(names)))
    spans = exporter.get_finished_spans()
    ingress = next(s for s in spans if s.name.startswith("StartUpdateWithStartWorkflow"))
    in_trace = {s.name.split(":")[0] + ":" + s.name.split(":")[1] for s in spans
                if s.context.trace_id == ingress.context.trace_id}
    # one trace from the message to the delivery
    assert {"RunActivity:durabot.llm_round", "RunActivity:durabot.deliver"} <= in_trace, in_trace
