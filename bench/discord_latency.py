"""Discord adapter latency: MESSAGE_CREATE to the first visible answer text, and REST calls per reply.

Starts its own Temporal dev server, fake model (100 ms to first token, 5 ms a token, 20 tokens) and
fake Discord, runs the real adapter against them, and prints p50 / p95 over the turns with the
model's time to first token taken off (what the adapter and Temporal add). Half the turns are
mentions that open a thread (a new conversation), half continue those threads without a mention.

    python bench/discord_latency.py [--turns 50]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent_core import Agent, OpenAIChatModel, TemporalConfig  # noqa: E402
from workers.servers import TemporalDevServer  # noqa: E402
from workers.settings import Settings  # noqa: E402
from bots.discord.app import run_discord  # noqa: E402
from tests.fakes.discord_server import FakeDiscord  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI, Reply  # noqa: E402

TTFT, TOKEN_DELAY, TOKENS = 0.100, 0.005, 20
ANSWER = "".join(f"tok{i} " for i in range(TOKENS)).strip()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main(turns: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    temporal = TemporalDevServer().start()
    model_server = FakeOpenAI(lambda body: Reply(text=ANSWER, ttft=TTFT, token_delay=TOKEN_DELAY)).start()
    fake = await FakeDiscord().start()
    task_queue = f"bench-{uuid.uuid4().hex[:8]}"
    host, port = temporal.address.rsplit(":", 1)
    agent = Agent("bench", model=OpenAIChatModel("fake", api_key="x", base_url=model_server.base_url),
                  temporal=TemporalConfig(host=host, port=int(port), task_queue=task_queue))
    settings = Settings.load(env={**fake.env(), "DURABOT_TASK_QUEUE": task_queue}, dotenv=None)
    serving = asyncio.create_task(run_discord(settings, agent, guild_ready_timeout=0.1))
    try:
        await fake.wait_for(lambda: fake.connected and fake.calls_to("PUT", "/commands"), timeout=30)
        first_text = {"new thread": [], "continuation": []}
        calls_per_reply: list[int] = []
        threads: list[int] = []
        half = (turns + 2) // 2
        for i in range(turns + 2):  # two warm-up turns
            # First the mentions, then one follow-up in each of their threads: by then each thread's
            # 5-per-5-s bucket has refilled, so pacing does not stretch the run.
            kind = "new thread" if i < half else "continuation"
            n_calls = len(fake.calls)
            t0 = time.monotonic()
            if kind == "new thread":
                msg = await fake.user_message(f"question {i}")
                thread_id = int(msg["id"])
                threads.append(thread_id)
            else:
                thread_id = threads[i - half]
                await fake.user_message(f"follow-up {i}", channel_id=thread_id, mention=False)
            count = len(fake.bot_messages(thread_id)) if kind == "continuation" else 0

            def shown() -> float | None:
                for c in fake.calls[n_calls:]:
                    if c.channel == thread_id and c.method in ("POST", "PATCH") and "tok0" in (c.body or {}).get(
                            "content", ""):
                        return c.at
                return None

            at = await fake.wait_for(shown, timeout=30)
            await fake.wait_for(lambda: len(fake.bot_messages(thread_id)) > count
                                and fake.bot_messages(thread_id)[-1]["content"] == ANSWER, timeout=30)
            if i not in (0, half):
                first_text[kind].append((at - t0 - TTFT) * 1000)
                calls_per_reply.append(len(fake.calls) - n_calls)
        everything = first_text["new thread"] + first_text["continuation"]
        print(f"turns: {len(everything)} (fake model: {TTFT * 1000:.0f} ms to first token, "
              f"{TOKEN_DELAY * 1000:.0f} ms/token, {TOKENS} tokens)")
        print("MESSAGE_CREATE -> first visible text, minus the model's time to first token:")
        for label, values in (("all", everything), *first_text.items()):
            print(f"  {label:13s} p50 {pct(values, 50):6.1f} ms   p95 {pct(values, 95):6.1f} ms   "
                  f"mean {statistics.mean(values):6.1f} ms")
        print(f"REST calls per reply: mean {statistics.mean(calls_per_reply):.1f}, "
              f"max {max(calls_per_reply)} (thread, placeholder, typing, edits)")
        print(f"429 responses: {len([c for c in fake.calls if c.status == 429])}")
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        await agent.close()
        await fake.stop()
        model_server.stop()
        temporal.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=50)
    asyncio.run(main(parser.parse_args().turns))
