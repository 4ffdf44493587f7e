"""Overhead of durabot over calling the model directly, in one process, against the same fake model.

Prints time to first token and whole-turn time (p50 / p95) for a turn without tools and a turn with one
tool, directly and through durabot (a real Temporal dev server, the embedded worker, transcripts in a
Redis server started here unless ``--memory-store``), and the overhead.
Then, per one-tool turn: CPU of this process (client, embedded worker and fake model) against the same
turns called directly, the Temporal server's CPU, and what the server did (workflow tasks, activity
tasks, history events, billable actions; turn_cost.py).
Temporal's own floor for each shape (temporal_floor.py: the same server, no-op activities) is measured
in the same run and printed beside it: the part of the overhead durabot's code can still cut.
Targets (p50): TTFT overhead <= 20 ms, plain turn overhead <= 25 ms, one-tool turn overhead <= 40 ms,
CPU per one-tool turn <= 40 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import psutil
from common import TOKENS, fake_model, pct, summary
from temporal_floor import Floor
from temporal_floor import cpu_per_turn as floor_cpu
from turn_cost import TARGETS, cost, history_events, is_tool_turn
from turn_cost import turns as split_turns

from agent_core import Agent, OpenAIChatModel, TemporalConfig, tool
from workers.servers import RedisServer, TemporalDevServer


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


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


async def cpu_per_tool_turn(agent: Agent, model: OpenAIChatModel, server: TemporalDevServer,
                            turns_cpu: int) -> str:
    """CPU ms per one-tool turn: this process through durabot minus the same turns called directly
    (the fake model and the client's own work cancel out), plus the Temporal server's."""
    me = psutil.Process()
    srv = psutil.Process(server.proc.pid) if server.proc else None
    c0 = _cpu(me)
    for _ in range(turns_cpu):
        await direct_turn(model, "use a tool")
    direct = (_cpu(me) - c0) / turns_cpu
    s0, w0 = _cpu(srv) if srv else 0.0, time.perf_counter()
    await asyncio.sleep(2.0)  # the server's own CPU while nothing runs (timers, visibility), per second
    idle_rate = ((_cpu(srv) - s0) if srv else 0.0) / (time.perf_counter() - w0)
    c0, s0, w0 = _cpu(me), _cpu(srv) if srv else 0.0, time.perf_counter()
    eager0 = server.counter("activity_eager_execution")
    for i in range(turns_cpu):
        await durable_turn(agent, "use a tool", f"conv-{i % 10}")
    eager = (server.counter("activity_eager_execution") - eager0) / turns_cpu
    ours = (_cpu(me) - c0) / turns_cpu
    server_all = (_cpu(srv) - s0) / turns_cpu if srv else 0.0
    server_ms = max(0.0, server_all - idle_rate * (time.perf_counter() - w0) / turns_cpu)
    total = ours - direct + server_ms
    return (f"CPU per one-tool turn: client + worker {(ours - direct) * 1000:.1f} ms (this process "
            f"{ours * 1000:.1f} ms minus a direct call's {direct * 1000:.1f} ms), temporal server "
            f"{server_ms * 1000:.1f} ms ({server_all * 1000:.1f} ms less its idle {idle_rate * 1000:.0f} ms/s); "
            f"together {total * 1000:.1f} ms (target <= {TARGETS['machine_cpu_ms']:g}, whole machine)\n"
            f"activities started eagerly (in the reply to the workflow task) per one-tool turn: {eager:.2f}")


async def main(turns: int, local_tools: bool, use_redis: bool = True) -> None:
    server = TemporalDevServer().start()
    redis = RedisServer().start() if use_redis else None
    fake = fake_model()
    try:
        model = OpenAIChatModel("bench", api_key="x", base_url=fake.base_url)
        host, port = server.address.rsplit(":", 1)
        options = {"local_tools": ["lookup"]} if local_tools else {}  # older code has no such option

        def store() -> dict:
            # The transcript in Redis, as durabot's worker processes keep it: its round checkpoints let
            # a model round run a local tool itself (agent_core/inline.py).
            if redis is None:
                return {}
            from agent_core.redis_backend import RedisTranscriptStore

            return {"store": RedisTranscriptStore(redis.url)}

        agent = Agent("bench", model=model, tools=[lookup], **options, **store(),
                      temporal=TemporalConfig(host=host, port=int(port), task_queue="bench-overhead"))
        # With local tools, the same turns with the tool as a regular activity, interleaved: the
        # comparison of the two holds under whatever else the machine does meanwhile.
        regular = Agent("bench", model=model, tools=[lookup], **store(),
                        temporal=TemporalConfig(host=host, port=int(port), task_queue="bench-overhead-regular")
                        ) if local_tools else None
        names = ("direct", "direct+tool", "durabot", "durabot+tool") + (("durabot+regular tool",) if regular else ()) \
            + ("floor", "floor+tool")
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in names}
        async with agent, Floor(agent.client) as floor:
            if regular is not None:
                await regular.start()
            for warm in range(3):  # warm up connections and the worker's caches
                await direct_turn(model, "hello")
                await durable_turn(agent, "hello", f"warm-{warm}")
                if regular is not None:
                    await durable_turn(regular, "hello", f"warm-r{warm}")
            for i in range(turns):
                conv = f"conv-{i % 10}"  # ten conversations, several turns each
                results["direct"].append(await direct_turn(model, "hello"))
                results["durabot"].append(await durable_turn(agent, "hello", conv))
                results["direct+tool"].append(await direct_turn(model, "use a tool"))
                results["durabot+tool"].append(await durable_turn(agent, "use a tool", conv))
                if regular is not None:
                    results["durabot+regular tool"].append(await durable_turn(regular, "use a tool", f"r{conv}"))
                results["floor"].append(await floor.turn(False))
                results["floor+tool"].append(await floor.turn(True))
            cpu = await cpu_per_tool_turn(agent, model, server, turns_cpu=max(10, turns // 2))
            srv_pid = server.proc.pid if server.proc else None
            floor_plain = await floor_cpu(agent.client, srv_pid, tool=False)
            floor_tool = await floor_cpu(agent.client, srv_pid, tool=True)
            # one turn after another (the answer in, the update done), so no two turns share a task
            for question in ("hello", "use a tool", "use a tool"):
                await agent.run(question, conversation_id="cost-0")
            events = await history_events(agent.handle("cost-0"))
            if regular is not None:
                await regular.close()
        print(f"tool lookup runs as a {'local' if local_tools else 'regular'} activity")
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
        print(f"overhead: time to first token p50 {ttft * 1000:.1f} ms (target <= {TARGETS['ttft']:g}), "
              f"p95 {ttft95 * 1000:.1f} ms")
        print(f"overhead: turn without tools p50 {plain * 1000:.1f} ms (target <= {TARGETS['plain']:g})")
        print(f"overhead: one-tool turn p50 {tool * 1000:.1f} ms (target <= {TARGETS['tool']:g}), "
              f"p95 {tool95 * 1000:.1f} ms")
        if regular is not None:
            reg = pct([v[1] for v in results["durabot+regular tool"]], 50) - \
                pct([v[1] for v in results["direct+tool"]], 50)
            print(f"overhead: one-tool turn, the tool a regular activity (interleaved) p50 {reg * 1000:.1f} ms")
        f_first = pct([v[0] for v in results["floor"]], 50)
        f_plain = pct([v[1] for v in results["floor"]], 50)
        f_tool = pct([v[1] for v in results["floor+tool"]], 50)
        print(f"Temporal's floor, same server, no-op activities, interleaved (temporal_floor.py): update to first "
              f"activity p50 {f_first * 1000:.1f} ms, plain turn {f_plain * 1000:.1f} ms, one-tool turn "
              f"{f_tool * 1000:.1f} ms")
        print(f"durabot above the floor: time to first token {(ttft - f_first) * 1000:.1f} ms, "
              f"turn without tools {(plain - f_plain) * 1000:.1f} ms, one-tool turn {(tool - f_tool) * 1000:.1f} ms")
        print(cpu)
        print(f"Temporal's floor CPU per turn (temporal_floor.py, 200 one-turn conversations, 50 at a time; "
              f"client and worker / server): update + one activity {floor_plain[0] * 1000:.1f} / "
              f"{floor_plain[1] * 1000:.1f} ms, update + activity, local activity, activity "
              f"{floor_tool[0] * 1000:.1f} / {floor_tool[1] * 1000:.1f} ms")
        split = split_turns(events)
        tool_turns = [t for t in split[1:] if is_tool_turn(t)]  # the first one also started the conversation
        if tool_turns:
            print(f"per one-tool turn (in a conversation): {cost(tool_turns[-1]).line()}")
            print(f"  by type: {cost(tool_turns[-1]).kinds()}")
        print(f"first turn of a conversation (plain, starts it): {cost(split[0]).line()}")
        print(f"  by type: {cost(split[0]).kinds()}")
    finally:
        fake.stop()
        server.stop()
        if redis is not None:
            redis.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--regular-tools", action="store_true",
                        help="run the tool as a regular activity, not a local one (ToolOptions.local_tools)")
    parser.add_argument("--memory-store", action="store_true",
                        help="keep transcripts in memory, not in Redis (then no tool runs inside a model round)")
    args = parser.parse_args()
    asyncio.run(main(args.turns, not args.regular_tools, not args.memory_store))
