"""Slack adapter benchmark: latency to first visible text, and behaviour with 20 threads at once.

Starts its own Temporal dev server, fake model and fake Slack Web API, then runs the real adapter
over HTTP with signed requests.

1. Latency: 50 turns, one after another, each in a new thread. Measured from the moment the event is
   sent to the adapter to the first edit that shows answer text in the thread, minus the fake model's
   own time to first token. (The chat.update budget is raised for this part so that it measures the
   path, not the rate limit; part 2 runs with Slack's limits.)
2. Load: 20 threads streaming at once under Slack's documented limits: Web API calls per reply,
   requests refused (429), and the longest gap between visible updates in any thread.

    python bench/slack_latency.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent_core import Agent, OpenAIChatModel, TemporalConfig
from workers.servers import TemporalDevServer
from workers.settings import Settings
from bots.slack import SlackAdapter
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fakes.slack_api import FakeSlack, SlackSender

TTFT = 0.100  # the fake model: 100 ms to first token, 5 ms a token, 20 tokens
TOKEN_DELAY = 0.005
TOKENS = 20
SECRET = "bench-secret"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def start(fake_slack: FakeSlack, temporal: TemporalDevServer, model_url: str, queue: str,
                budget: tuple[int, float] | None) -> tuple[Agent, SlackAdapter, SlackSender]:
    host, port = temporal.address.rsplit(":", 1)
    agent = Agent("bench", model=OpenAIChatModel("fake", api_key="k", base_url=model_url),
                  temporal=TemporalConfig(host=host, port=int(port), task_queue=queue))
    await agent.start()
    settings = Settings.load(env={"SLACK_BOT_TOKEN": fake_slack.token, "SLACK_SIGNING_SECRET": SECRET,
                                  "SLACK_API_URL": fake_slack.base_url, "DURABOT_TASK_QUEUE": queue}, dotenv=None)
    adapter = SlackAdapter(settings, agent, update_budget=budget)
    await adapter.start()
    http_port = await adapter.serve_http(port=0, host="127.0.0.1")
    return agent, adapter, SlackSender(f"http://127.0.0.1:{http_port}/slack/events", SECRET)


def first_answer_at(fake: FakeSlack, channel: str, thread_ts: str) -> float | None:
    mine = {m["ts"] for m in fake.bot_messages(channel, thread_ts)}
    for at, ch, ts, text in fake.visible:
        if ch == channel and ts in mine and "w0" in text:
            return at
    return None


async def latency(temporal: TemporalDevServer, model: FakeOpenAI) -> None:
    fake = await FakeSlack(update_limit=100_000).start()
    model.script = lambda body: Reply(tokens=[f"w{i} " for i in range(TOKENS)], ttft=TTFT, token_delay=TOKEN_DELAY)
    agent, adapter, sender = await start(fake, temporal, model.base_url, "bench-latency", (100_000, 60.0))
    first, placeholder = [], []
    try:
        for i in range(55):
            channel = f"C{i}"  # chat.postMessage allows ~1/s per channel: one channel per turn
            event = fake.add_user_message(channel, f"<@{fake.bot_user}> question {i}")
            event["type"] = "app_mention"
            sent = time.monotonic()
            status, _ = await sender.event(event)
            assert status == 200
            at = await fake.wait_for(lambda: first_answer_at(fake, channel, event["ts"]), 10)
            mine = {m["ts"] for m in fake.bot_messages(channel, event["ts"])}
            ph = min(a for a, ch, ts, t in fake.visible if ch == channel and ts in mine)
            await fake.wait_for(lambda: any(f"w{TOKENS - 1}" in m["text"] and "Thinking" not in m["text"]
                                            for m in fake.bot_messages(channel, event["ts"])), 10)
            if i >= 5:  # warm-up turns are not counted
                first.append((at - sent - TTFT) * 1000)
                placeholder.append((ph - sent) * 1000)
    finally:
        await sender.close()
        await adapter.stop()
        await agent.close()
        await fake.stop()
    print(f"Latency over {len(first)} turns (event sent -> first answer text in the thread, minus the "
          f"model's {TTFT * 1000:.0f} ms to first token):")
    print(f"  p50 {statistics.median(first):.1f} ms   p95 {pct(first, 95):.1f} ms   max {max(first):.1f} ms")
    print(f"  placeholder visible: p50 {statistics.median(placeholder):.1f} ms   p95 {pct(placeholder, 95):.1f} ms")


async def load(temporal: TemporalDevServer, model: FakeOpenAI) -> None:
    fake = await FakeSlack().start()  # Slack's documented limits
    words = 150
    model.script = lambda body: Reply(tokens=[f"w{i} " for i in range(words)], ttft=TTFT, token_delay=0.02)
    agent, adapter, sender = await start(fake, temporal, model.base_url, "bench-load", None)
    try:
        events = []
        for i in range(20):
            event = fake.add_user_message(f"C{i % 5}", f"<@{fake.bot_user}> stream {i}")
            event["type"] = "app_mention"
            events.append(event)
        t0 = time.monotonic()
        await asyncio.gather(*(sender.event(e) for e in events))

        def done() -> bool:
            return all(any(f"w{words - 1}" in m["text"] and "Thinking" not in m["text"]
                           for m in fake.bot_messages(e["channel"], e["ts"])) for e in events)

        await fake.wait_for(done, 120)
        elapsed = time.monotonic() - t0
    finally:
        await sender.close()
        await adapter.stop()
        await agent.close()
    writes = fake.count("chat.postMessage") + fake.count("chat.update")
    gaps = []
    for e in events:
        mine = {m["ts"] for m in fake.bot_messages(e["channel"], e["ts"])}
        times = [t0] + [at for at, ch, ts, _ in fake.visible if ch == e["channel"] and ts in mine]
        gaps.append(max(b - a for a, b in zip(times, times[1:])))
    await fake.stop()
    print(f"20 threads streaming at once ({words} tokens at 20 ms each, 5 channels, Slack's limits):")
    print(f"  all answers complete after {elapsed:.1f} s; chat.update {fake.count('chat.update')}, "
          f"chat.postMessage {fake.count('chat.postMessage')}, refused (429) {fake.over_limit}")
    print(f"  Web API writes per reply {writes / 20:.1f}; longest gap between visible updates in a thread "
          f"{max(gaps):.2f} s (median thread {statistics.median(gaps):.2f} s)")


async def main() -> None:
    temporal = TemporalDevServer().start()
    model = FakeOpenAI().start()
    try:
        await latency(temporal, model)
        await load(temporal, model)
    finally:
        model.stop()
        temporal.stop()


if __name__ == "__main__":
    asyncio.run(main())
