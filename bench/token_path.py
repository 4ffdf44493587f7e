"""CPU of the token path alone: the model's streamed answer read and its tokens published on Redis.

What an LLM round spends in the worker between the model server and the event bus, without Temporal:
rounds of 20 tokens (100 ms to first token, 5 ms a token) from the fake model in a process of its
own, their tokens batched as a round batches them (the first at once, then every 30 ms) and published
on a real Redis. Four ways, in alternation so a busy machine weighs on each alike:

- reading: the openai client's typed stream (``chat.completions.create(stream=True)``), or the raw
  response read by ``agent_core.chat_stream`` (what ``OpenAIChatModel.complete`` does);
- publishing: one pipeline per event (XADD + EXPIRE), or ``RedisEventBus``'s group commit.

Printed per way: CPU ms per round of this process (user + system), Redis round trips per round, and
time to first token p50 as the reader saw it.

    .venv/bin/python bench/token_path.py                  # 300 rounds, 30 at a time, 2 passes
    .venv/bin/python bench/token_path.py --rounds 100 --concurrency 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import pct  # noqa: E402
from throughput import FakeModelProcess  # noqa: E402

from agent_core.activities import _TokenBatcher  # noqa: E402
from agent_core.events import encode_event  # noqa: E402
from agent_core.model import OpenAIChatModel  # noqa: E402
from agent_core.redis_backend import RedisEventBus, _client  # noqa: E402
from agent_core.types import AgentEvent  # noqa: E402
from workers.servers import RedisServer  # noqa: E402

Publish = Callable[[str, AgentEvent], Awaitable[None]]
MESSAGES = [{"role": "user", "content": "say something"}]


class PerEventPublisher:
    """The reference: one pipeline (XADD + EXPIRE) and one round trip per event."""

    def __init__(self, url: str) -> None:
        self.redis = _client(url)
        self.round_trips = 0

    async def publish(self, stream: str, event: AgentEvent) -> None:
        event.ts = event.ts or time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd("bench:ev:" + stream, {"e": encode_event(event)}, maxlen=5000, approximate=True)
            pipe.expire("bench:ev:" + stream, 3600)
            self.round_trips += 1
            await pipe.execute()

    async def close(self) -> None:
        await self.redis.aclose()


async def typed_stream(model: OpenAIChatModel, on_delta: Callable[[str], Awaitable[None]]) -> None:
    """The reference: the client's typed chunks, read as the model read them before."""
    stream = await model._get_client().chat.completions.create(
        model=model.model, messages=[], stream=True, stream_options={"include_usage": True},
        extra_body={"messages": MESSAGES})
    async for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        if delta is not None and delta.content:
            await on_delta(delta.content)


async def lean_stream(model: OpenAIChatModel, on_delta: Callable[[str], Awaitable[None]]) -> None:
    await model.complete(MESSAGES, None, on_delta)


async def run_way(read: Any, publisher: Any, model: OpenAIChatModel, rounds: int, concurrency: int
                  ) -> tuple[float, float, float]:
    """CPU seconds per round, round trips per round, TTFT p50 (s)."""
    sem = asyncio.Semaphore(concurrency)
    ttfts: list[float] = []

    async def one(i: int) -> None:
        async with sem:
            stream = f"bench-{i}-{time.monotonic_ns()}"
            start = time.perf_counter()
            first: list[float] = []

            async def send(text: str) -> None:
                await publisher.publish(stream, AgentEvent(kind="token", turn_id="t", delta=text, round=0, attempt=1))

            batcher = _TokenBatcher(send, 0.03)

            async def on_delta(delta: str) -> None:
                if not first:
                    first.append(time.perf_counter() - start)
                batcher.add(delta)

            try:
                await read(model, on_delta)
            finally:
                await batcher.close()
            await publisher.publish(stream, AgentEvent(kind="round_finished", turn_id="t", round=0, text="x"))
            ttfts.append(first[0])

    trips0 = publisher.round_trips
    cpu0 = time.process_time()
    await asyncio.gather(*(one(i) for i in range(rounds)))
    cpu = time.process_time() - cpu0
    return cpu / rounds, (publisher.round_trips - trips0) / rounds, pct(ttfts, 50)


async def main(args: argparse.Namespace) -> None:
    fake = FakeModelProcess().start()
    redis = RedisServer().start()
    model = OpenAIChatModel("bench-model", api_key="k", base_url=fake.base_url)
    per_event, group = PerEventPublisher(redis.url), RedisEventBus(redis.url, prefix="bench:ev:")
    ways = {
        "typed stream + pipeline per event (before)": (typed_stream, per_event),
        "typed stream + group commit": (typed_stream, group),
        "own SSE reading + pipeline per event": (lean_stream, per_event),
        "own SSE reading + group commit (now)": (lean_stream, group),
    }
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in ways}
    try:
        print(f"token path: {args.rounds} rounds of 20 tokens, {args.concurrency} at a time, {args.passes} passes; "
              f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
        for read, publisher in ways.values():  # warm-up: imports, connections
            await run_way(read, publisher, model, args.concurrency, args.concurrency)
        fake.timings()
        for _ in range(args.passes):
            for name, (read, publisher) in ways.items():
                results[name].append(await run_way(read, publisher, model, args.rounds, args.concurrency))
                fake.timings()  # the fake model keeps a record per request: drop it
        for name, runs in results.items():
            cpu = sorted(r[0] for r in runs)[len(runs) // 2]
            trips = sum(r[1] for r in runs) / len(runs)
            ttft = sorted(r[2] for r in runs)[len(runs) // 2]
            print(f"{name:<44} CPU per round {cpu * 1000:6.2f} ms   Redis round trips per round {trips:5.2f}   "
                  f"TTFT p50 {ttft * 1000:6.1f} ms")
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
    finally:
        await per_event.close()
        await group.close()
        redis.stop()
        fake.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=30)
    parser.add_argument("--passes", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
