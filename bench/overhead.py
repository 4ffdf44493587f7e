"""Overhead of durabot over calling the model directly, in one process, against the same fake model.

Prints time to first token and whole-turn time (p50 / p95) for a turn without tools and a turn with one
tool, directly and through durabot (a real Temporal dev server, the embedded worker), and the overhead.
Targets: TTFT overhead p50 <= 50 ms; one-tool turn overhead p50 <= 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from common import TOKENS, fake_model, pct, summary

from agent_core import Agent, OpenAIChatModel, TemporalConfig, tool
from workers.servers import TemporalDevServer


@tool
async def lookup(key: str) -> str:
    """Look a key up."""
    return f"value of {key}"


async def direct_turn(model: OpenAIChatModel, question: str) -> tuple[float, float]:
    """The baseline: the model and the tool called in-process, no durability."""
    start = time.perf_counter()
    first: list[float] = []

    async def on_delta(_: str) -> None:
        if not first:
            first.append(time.perf_counter() - start)

    messages = [{"role": "user", "content": question}]
    tools = [lookup.openai_schema()]
    result = await model.complete(messages, tools, on_delta)
    if result.tool_calls:
        call = result.tool_calls[0]
        output = await lookup.invoke(lookup.parse_arguments(call.arguments), None)  # type: ignore[arg-type]
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}]},
            {"role": "tool", "tool_call_id": call.id, "content": output},
        ]
        result = await model.complete(messages, tools, on_delta)
    assert result.text.count("tok") == TOKENS
    return first[0], time.perf_counter() - start


async def durable_turn(agent: Agent, question: str, conversation: str) -> tuple[float, float]:
    start = time.perf_counter()
    first = None
    async for ev in agent.stream(question, conversation_id=conversation):
        if ev.kind == "token" and first is None:
            first = time.perf_counter() - start
        if ev.kind == "finished":
            assert ev.text.count("tok") == TOKENS, ev.text
    return first or 0.0, time.perf_counter() - start


async def main(turns: int) -> None:
    server = TemporalDevServer().start()
    fake = fake_model()
    try:
        model = OpenAIChatModel("bench", api_key="x", base_url=fake.base_url)
        host, port = server.address.rsplit(":", 1)
        agent = Agent("bench", model=model, tools=[lookup],
                      temporal=TemporalConfig(host=host, port=int(port), task_queue="bench-overhead"))
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in
                                                          ("direct", "direct+tool", "durabot", "durabot+tool")}
        async with agent:
            for warm in range(3):  # warm up connections and the worker's caches
                await direct_turn(model, "hello")
                await durable_turn(agent, "hello", f"warm-{warm}")
            for i in range(turns):
                conv = f"conv-{i % 10}"  # ten conversations, several turns each
                results["direct"].append(await direct_turn(model, "hello"))
                results["durabot"].append(await durable_turn(agent, "hello", conv))
                results["direct+tool"].append(await direct_turn(model, "use a tool"))
                results["durabot+tool"].append(await durable_turn(agent, "use a tool", conv))
        print(f"durabot overhead over {turns} turns each (fake model: 100 ms to first token, 5 ms/token, "
              f"{TOKENS} tokens)")
        for name, values in results.items():
            print(summary(f"{name} time to first token", [v[0] for v in values]))
            print(summary(f"{name} whole turn", [v[1] for v in values]))
        ttft = pct([v[0] for v in results["durabot"]], 50) - pct([v[0] for v in results["direct"]], 50)
        ttft95 = pct([v[0] for v in results["durabot"]], 95) - pct([v[0] for v in results["direct"]], 95)
        tool = pct([v[1] for v in results["durabot+tool"]], 50) - pct([v[1] for v in results["direct+tool"]], 50)
        tool95 = pct([v[1] for v in results["durabot+tool"]], 95) - pct([v[1] for v in results["direct+tool"]], 95)
        plain = pct([v[1] for v in results["durabot"]], 50) - pct([v[1] for v in results["direct"]], 50)
        print(f"overhead: time to first token p50 {ttft * 1000:.1f} ms (target <= 50), p95 {ttft95 * 1000:.1f} ms")
        print(f"overhead: turn without tools p50 {plain * 1000:.1f} ms")
        print(f"overhead: one-tool turn p50 {tool * 1000:.1f} ms (target <= 100), p95 {tool95 * 1000:.1f} ms")
    finally:
        fake.stop()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=50)
    asyncio.run(main(parser.parse_args().turns))
