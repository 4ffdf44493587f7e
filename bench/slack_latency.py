"""Slack adapter benchmark: native streaming and placeholder edits side by side, in one run.

Starts its own Temporal dev server, fake model and fake Slack Web API, then runs the real adapter
over HTTP with signed requests, once per streaming mode (``DURABOT_SLACK_STREAMING``).

1. Latency: 50 turns, one after another, each in a new thread. Measured from the moment the event is
   sent to the adapter to the first call that shows answer text in the thread (a streamed message's
   first text, or the first edit of the placeholder), minus the fake model's own time to first token.
   The workspace budgets are raised for this part so that it measures the path, not the rate limits;
   part 2 runs with Slack's limits.
2. Load (after one unmeasured round of it in each mode, as a warm-up): 20 threads streaming at once
   under Slack's documented limits (Tier 2 start/stop, Tier 4
   append, ~50 chat.update a minute): Web API calls per reply, requests refused (429), how many
   answers streamed natively, how long until each thread first shows something (a placeholder
   counts) and until it first shows answer text, and from then on the longest gap between visible
   updates in any thread.

    python bench/slack_latency.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent_core import Agent, OpenAIChatModel, TemporalConfig  # noqa: E402
from bots.slack import SlackAdapter  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI, Reply  # noqa: E402
from tests.fakes.slack_api import FakeSlack, SlackSender  # noqa: E402
from workers.servers import TemporalDevServer  # noqa: E402
from workers.settings import Settings  # noqa: E402

TTFT = 0.100  # the fake model: 100 ms to first token, 5 ms a token, 20 tokens
TOKEN_DELAY = 0.005
TOKENS = 20
SECRET = "bench-secret"
MODES = ("native", "edits")
WRITES = ("chat.postMessage", "chat.update", "chat.startStream", "chat.appendStream", "chat.stopStream")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def start(fake_slack: FakeSlack, temporal: TemporalDevServer, model_url: str, queue: str, mode: str,
                raised: bool) -> tuple[Agent, SlackAdapter, SlackSender]:
    host, port = temporal.address.rsplit(":", 1)
    agent = Agent("bench", model=OpenAIChatModel("fake", api_key="k", base_url=model_url),
                  temporal=TemporalConfig(host=host, port=int(port), task_queue=queue))
    await agent.start()
    settings = Settings.load(env={"SLACK_BOT_TOKEN": fake_slack.token, "SLACK_SIGNING_SECRET": SECRET,
                                  "SLACK_API_URL": fake_slack.base_url, "DURABOT_TASK_QUEUE": queue,
                                  "DURABOT_SLACK_STREAMING": mode}, dotenv=None)
    adapter = SlackAdapter(settings, agent, update_budget=(100_000, 60.0) if raised else None,
                           stream_budget=(100_000, 100_000, 60.0) if raised else None)
    await adapter.start()
    http_port = await adapter.serve_http(port=0, host="127.0.0.1")
    return agent, adapter, SlackSender(f"http://127.0.0.1:{http_port}/slack/events", SECRET)


def shown(fake: FakeSlack, channel: str, thread_ts: str) -> list[tuple[float, str]]:
    """(time, text) of every visible change of the bot's messages in a thread."""
    mine = {m["ts"] for m in fake.bot_messages(channel, thread_ts)}
    return [(at, text) for at, ch, ts, text in fake.visible if ch == channel and ts in mine]


def final(fake: FakeSlack, channel: str, thread_ts: str, last_word: str) -> bool:
    msgs = fake.bot_messages(channel, thread_ts)
    return bool(msgs) and all(m.get("streaming_state") != "in_progress" and "Thinking" not in m["text"]
                              for m in msgs) and any(last_word in m["text"] for m in msgs)


async def latency(temporal: TemporalDevServer, model: FakeOpenAI, mode: str) -> dict:
    fake = await FakeSlack(update_limit=100_000, stream_tier2=100_000, stream_tier4=100_000).start()
    model.script = lambda body: Reply(tokens=[f"w{i} " for i in range(TOKENS)], ttft=TTFT, token_delay=TOKEN_DELAY)
    agent, adapter, sender = await start(fake, temporal, model.base_url, f"bench-latency-{mode}", mode, True)
    first: list[float] = []
    try:
        for i in range(55):
            channel = f"C{i}"  # chat.postMessage allows ~1/s per channel: one channel per turn
            event = fake.add_user_message(channel, f"<@{fake.bot_user}> question {i}")
            event["type"] = "app_mention"
            sent = time.monotonic()
            status, _ = await sender.event(event)
            assert status == 200
            at = await fake.wait_for(lambda: next((a for a, t in shown(fake, channel, event["ts"]) if "w0" in t),
                                                  None), 10)
            await fake.wait_for(lambda: final(fake, channel, event["ts"], f"w{TOKENS - 1}"), 10)
            if i >= 5:  # warm-up turns are not counted
                first.append((at - sent - TTFT) * 1000)
        calls = sum(1 for c in fake.calls if c.method != "auth.test") / 55
        writes = sum(fake.count(m) for m in WRITES) / 55
    finally:
        await sender.close()
        await adapter.stop()
        await agent.close()
        await fake.stop()
    return {"p50": statistics.median(first), "p95": pct(first, 95), "max": max(first), "calls": calls,
            "writes": writes}


async def load(temporal: TemporalDevServer, model: FakeOpenAI, mode: str) -> dict:
    fake = await FakeSlack().start()  # Slack's documented limits
    words = 150
    model.script = lambda body: Reply(tokens=[f"w{i} " for i in range(words)], ttft=TTFT, token_delay=0.02)
    agent, adapter, sender = await start(fake, temporal, model.base_url, f"bench-load-{mode}", mode, False)
    try:
        events = []
        for i in range(20):
            event = fake.add_user_message(f"C{i % 5}", f"<@{fake.bot_user}> stream {i}")
            event["type"] = "app_mention"
            events.append(event)
        t0 = time.monotonic()
        await asyncio.gather(*(sender.event(e) for e in events))
        await fake.wait_for(lambda: all(final(fake, e["channel"], e["ts"], f"w{words - 1}") for e in events), 120)
        elapsed = time.monotonic() - t0
    finally:
        await sender.close()
        await adapter.stop()
        await agent.close()
    gaps, native_gaps, firsts, texts = [], [], [], []
    for e in events:
        seen = shown(fake, e["channel"], e["ts"])
        times = [at for at, _ in seen]
        firsts.append(times[0] - t0)
        texts.append(next(at for at, text in seen if "w0" in text) - t0)
        gap = max(b - a for a, b in zip(times, times[1:]))  # from the first visible change on
        gaps.append(gap)
        if any("streaming_state" in m for m in fake.bot_messages(e["channel"], e["ts"])):
            native_gaps.append(gap)
    out = {"elapsed": elapsed, "refused": fake.over_limit, "writes": sum(fake.count(m) for m in WRITES) / 20,
           "calls": sum(1 for c in fake.calls if c.method != "auth.test") / 20,
           "native": len(native_gaps), "gap": max(gaps), "median_gap": statistics.median(gaps),
           "native_gap": max(native_gaps) if native_gaps else None,
           "first_p50": statistics.median(firsts), "first_max": max(firsts),
           "text_p50": statistics.median(texts), "text_max": max(texts),
           "by_method": {m: fake.count(m) for m in WRITES if fake.count(m)}}
    await fake.stop()
    return out


def row(name: str, values: dict[str, str]) -> str:
    return f"  {name:<58}" + "".join(f"{values[m]:>16}" for m in MODES)


async def main() -> None:
    temporal = TemporalDevServer().start()
    model = FakeOpenAI().start()
    try:
        lat = {m: await latency(temporal, model, m) for m in MODES}
        for m in MODES:  # warm-up: the process's first burst of concurrent turns is slower in either mode
            await load(temporal, model, m)
        ld = {m: await load(temporal, model, m) for m in MODES}
    finally:
        model.stop()
        temporal.stop()
    print(f"Slack adapter, native streaming vs placeholder edits (model: {TTFT * 1000:.0f} ms to first token, "
          f"{TOKEN_DELAY * 1000:.0f} ms a token); load average at the end: "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(row("", {m: m for m in MODES}))
    print("Latency, 50 turns one after another (budgets raised):")
    print(row("event -> first answer text, minus the model's TTFT: p50",
              {m: f"{lat[m]['p50']:.1f} ms" for m in MODES}))
    print(row("  p95", {m: f"{lat[m]['p95']:.1f} ms" for m in MODES}))
    print(row("  max", {m: f"{lat[m]['max']:.1f} ms" for m in MODES}))
    print(row("Web API writes per reply (20 tokens)", {m: f"{lat[m]['writes']:.1f}" for m in MODES}))
    print(row("Web API calls per reply, all methods", {m: f"{lat[m]['calls']:.1f}" for m in MODES}))
    print("20 threads streaming at once (150 tokens at 20 ms, 5 channels, Slack's limits):")
    print(row("all answers complete after", {m: f"{ld[m]['elapsed']:.1f} s" for m in MODES}))
    print(row("requests refused (429)", {m: str(ld[m]['refused']) for m in MODES}))
    print(row("answers streamed natively", {m: f"{ld[m]['native']}/20" for m in MODES}))
    print(row("Web API writes per reply", {m: f"{ld[m]['writes']:.1f}" for m in MODES}))
    print(row("Web API calls per reply, all methods", {m: f"{ld[m]['calls']:.1f}" for m in MODES}))
    print(row("event -> first visible change: p50", {m: f"{ld[m]['first_p50']:.2f} s" for m in MODES}))
    print(row("  max", {m: f"{ld[m]['first_max']:.2f} s" for m in MODES}))
    print(row("event -> first answer text: p50", {m: f"{ld[m]['text_p50']:.2f} s" for m in MODES}))
    print(row("  max", {m: f"{ld[m]['text_max']:.2f} s" for m in MODES}))
    print(row("longest gap between visible updates, any thread", {m: f"{ld[m]['gap']:.2f} s" for m in MODES}))
    print(row("  median thread", {m: f"{ld[m]['median_gap']:.2f} s" for m in MODES}))
    print(row("  longest in a natively streamed thread",
              {m: (f"{ld[m]['native_gap']:.2f} s" if ld[m]['native_gap'] is not None else "-") for m in MODES}))
    for m in MODES:
        print(f"  calls by method ({m}): {ld[m]['by_method']}")


if __name__ == "__main__":
    asyncio.run(main())
