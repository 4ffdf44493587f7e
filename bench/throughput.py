"""Throughput of separate ``durabot worker`` processes, and the memory of a worker holding idle conversations.

One Temporal dev server and one Redis server on this machine (started here), the fake model with fixed
latency in a process of its own, the client in this process. Each turn is one model round that calls the
tool ``lookup`` and a final round of 20 tokens (100 ms to first token, 5 ms per token).

Phase 1 and 2: --conversations conversations, --concurrency at a time, one turn each, with one and then
two worker processes. Printed: turns per second; turn latency p50 / p95 minus the model's own time
(measured per request in the fake model); worker CPU seconds per turn (user + system); peak worker RSS;
how many turns came back correct. Phase 3: a fresh worker runs --idle conversations of one turn each; their
workflows stay open (idle timeout 1 h); the worker's RSS is printed once they are all idle.

Targets: >= 35 turns/s with one worker on 2 cores, <= 40 ms CPU per turn on the whole machine; under 300 MB for a worker holding 1,000 idle
conversations.

    .venv/bin/python bench/throughput.py                      # 200 / 50 / 1000
    .venv/bin/python bench/throughput.py --conversations 40 --concurrency 10 --idle 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from common import ANSWER_TOKENS, TOKEN_DELAY, TOKENS, TTFT, pct  # noqa: E402
from procs import DurabotProc, FakeModelProcess, Profilers, clean_env, cpu, guarded, run_main, safe_process  # noqa: E402
from turn_cost import TARGETS, cost, history_events, turns  # noqa: E402

from workers.servers import RedisServer, TemporalDevServer  # noqa: E402
from agent_core.settings import Settings  # noqa: E402
from workers.app import build_agent  # noqa: E402

EXPECTED_TEXT = "".join(ANSWER_TOKENS)
TOOL_OUTPUT = "value of k"
NOMINAL_MODEL_TIME = 2 * TTFT + (TOKENS - 1) * TOKEN_DELAY  # tool-call round + answer round
MB = 1024 * 1024


# ---------------------------------------------------------------------- workers
class RssSampler:
    """Samples the workers' RSS every 100 ms in a thread; keeps each one's peak."""

    def __init__(self, workers: list[DurabotProc]) -> None:
        self.workers = workers
        self.peak = [0] * len(workers)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def _run(self) -> None:
        while not self._stop.is_set():
            for i, w in enumerate(self.workers):
                try:
                    self.peak[i] = max(self.peak[i], w.rss())
                except psutil.Error:
                    pass
            self._stop.wait(0.1)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)


# ---------------------------------------------------------------------- the benchmark
class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="durabot-throughput-"))
        self.temporal = TemporalDevServer(log_file=str(self.tmp / "temporal.log"))
        self.redis = RedisServer()
        self.fake = FakeModelProcess(timed=True)
        self.workers: list[DurabotProc] = []
        self.agents: list[Any] = []

    def env(self, task_queue: str) -> dict[str, str]:
        env = clean_env(**{
            "TEMPORAL_ADDRESS": self.temporal.address, "DURABOT_TASK_QUEUE": task_queue,
            "OPENAI_BASE_URL": self.fake.base_url, "OPENAI_API_KEY": "bench-key", "DURABOT_MODEL": "bench-model",
            "DURABOT_TOOLS": "bench.throughput_tools", "REDIS_URL": self.redis.url,
            "DURABOT_METRICS_PORT": "0", "DURABOT_LOG_LEVEL": "INFO",
        })
        if not self.args.regular_tools:
            env["DURABOT_LOCAL_TOOLS"] = "lookup"
        return env

    def start_servers(self) -> None:
        self.temporal.start()
        self.redis.start()
        self.fake.start()

    async def start_phase(self, name: str, n_workers: int) -> tuple[Any, list[DurabotProc], str]:
        task_queue = f"bench-{name}-{uuid.uuid4().hex[:6]}"
        env = self.env(task_queue)
        workers = [DurabotProc(["worker"], env, self.tmp / f"{name}-worker{i}.log") for i in range(n_workers)]
        self.workers += workers
        for w in workers:
            await asyncio.to_thread(w.wait_ready)
        agent = build_agent(Settings.load(env=env, dotenv=None), local_worker=False)
        await agent.start()
        self.agents.append(agent)
        return agent, workers, task_queue

    async def stop_phase(self, agent: Any, workers: list[DurabotProc]) -> None:
        await _close_agent(agent)
        self.agents.remove(agent)
        for w in workers:
            await asyncio.to_thread(w.stop)
            self.workers.remove(w)

    async def run_turns(self, agent: Any, prefix: str, count: int, concurrency: int
                        ) -> tuple[float, dict[str, float], list[str]]:
        """Runs ``count`` one-turn conversations, ``concurrency`` at a time.

        Returns the wall time, each correct conversation's turn latency, and the errors."""
        sem = asyncio.Semaphore(concurrency)
        latencies: dict[str, float] = {}
        errors: list[str] = []

        async def one(i: int) -> None:
            conv = f"{prefix}-{i}"
            async with sem:
                start = time.perf_counter()
                try:
                    res = await asyncio.wait_for(
                        agent.run(f"use a tool for {conv}", conversation_id=conv), self.args.turn_timeout)
                except Exception as exc:  # counted as lost
                    errors.append(f"{conv}: {type(exc).__name__}: {exc}")
                    return
                elapsed = time.perf_counter() - start
            if res.text != EXPECTED_TEXT or res.tool_calls != ["lookup"]:
                errors.append(f"{conv}: wrong result text={res.text[:40]!r} tools={res.tool_calls}")
                return
            latencies[conv] = elapsed

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        return time.perf_counter() - start, latencies, errors

    async def throughput_phase(self, n_workers: int) -> None:
        a = self.args
        name = f"{n_workers}w"
        agent, workers, _ = await self.start_phase(name, n_workers)
        # warm-up: imports, connections, caches
        _, _, warm_errors = await self.run_turns(agent, f"warm-{name}", a.warmup, min(a.warmup, a.concurrency))
        if warm_errors:
            raise RuntimeError(f"warm-up failed: {warm_errors[:3]}")
        self.fake.timings()  # discard the warm-up's
        me, server = psutil.Process(), safe_process(self.temporal.proc)
        redis = safe_process(self.redis.proc)
        fake = safe_process(self.fake.proc)
        others0 = [cpu(me), cpu(server), cpu(redis), cpu(fake)]
        machine0 = _machine_busy()
        eager0 = self.temporal.counter("activity_eager_execution")
        cpu0 = [w.cpu() for w in workers]
        profilers = self.start_profilers(workers, name) if a.profile else None
        with RssSampler(workers) as rss:
            wall, latencies, errors = await self.run_turns(agent, f"run-{name}", a.conversations, a.concurrency)
        cpu1 = [w.cpu() for w in workers]
        if profilers is not None:
            await asyncio.to_thread(profilers.stop)
        others1 = [cpu(me), cpu(server), cpu(redis), cpu(fake)]
        machine = _machine_busy() - machine0
        eager = self.temporal.counter("activity_eager_execution") - eager0
        timings = self.fake.timings()

        model_time: dict[str, float] = defaultdict(float)
        requests: dict[str, int] = defaultdict(int)
        tool_seen: dict[str, bool] = defaultdict(bool)
        for text, role, seconds, tool_content in timings:
            conv = text.rsplit(" ", 1)[-1]
            model_time[conv] += seconds
            requests[conv] += 1
            if role == "tool" and tool_content == TOOL_OUTPUT:
                tool_seen[conv] = True
        correct = [c for c in latencies if requests[c] == 2 and tool_seen[c]]
        for c in latencies:
            if c not in correct:
                errors.append(f"{c}: {requests[c]} model requests, tool output seen: {tool_seen[c]}")
        overhead = [latencies[c] - model_time[c] for c in correct]
        turns = len(correct)
        worker_cpu = sum(cpu1) - sum(cpu0)
        other = [b - x for x, b in zip(others0, others1)]

        label = f"{n_workers} worker{'s' if n_workers > 1 else ''}"
        print(f"--- {label}: {a.conversations} conversations, {a.concurrency} at a time, one turn each "
              f"(tool round + answer round)")
        target = f"  (target >= {TARGETS['turns_per_s']:g})" if n_workers == 1 else ""
        print(f"[{label}] turns per second              {turns / wall:8.1f}{target}   "
              f"({turns} turns in {wall:.2f} s)")
        if overhead:
            print(f"[{label}] turn latency                  p50 {_ms(pct(list(latencies.values()), 50))}  "
                  f"p95 {_ms(pct(list(latencies.values()), 95))}")
            mt = [model_time[c] for c in correct]
            print(f"[{label}] model time per turn (measured) p50 {_ms(pct(mt, 50))}  p95 {_ms(pct(mt, 95))}  "
                  f"(nominal {NOMINAL_MODEL_TIME * 1000:.0f} ms)")
            print(f"[{label}] turn latency minus model time p50 {_ms(pct(overhead, 50))}  "
                  f"p95 {_ms(pct(overhead, 95))}  mean {_ms(statistics.mean(overhead))}")
        print(f"[{label}] worker CPU per turn            {worker_cpu / max(turns, 1) * 1000:8.1f} ms   "
              f"(user+system {worker_cpu:.2f} s over {wall:.2f} s wall; per worker "
              + ", ".join(f"{b - x:.2f} s" for x, b in zip(cpu0, cpu1)) + ")")
        print(f"[{label}] other CPU per turn             client {other[0] / max(turns, 1) * 1000:.1f} ms, "
              f"temporal server {other[1] / max(turns, 1) * 1000:.1f} ms, "
              f"redis {other[2] / max(turns, 1) * 1000:.1f} ms, fake model {other[3] / max(turns, 1) * 1000:.1f} ms")
        ours = worker_cpu + sum(other)
        print(f"[{label}] CPU per turn, our processes    {ours / max(turns, 1) * 1000:8.1f} ms   "
              f"(target <= {TARGETS['machine_cpu_ms']:g}: worker + server + client + redis + fake model)")
        print(f"[{label}] machine CPU busy               {machine:.1f} of {wall * (os.cpu_count() or 1):.1f} "
              f"core-seconds; benchmark's processes {ours:.1f}, other processes {max(0.0, machine - ours):.1f}")
        print(f"[{label}] activities started eagerly   {eager / max(turns, 1):8.2f} per turn "
              "(handed to the worker in the reply to its workflow task)")
        print(f"[{label}] peak worker RSS               "
              + ", ".join(f"{p / MB:.1f} MB" for p in rss.peak))
        print(f"[{label}] turns correct                 {turns}/{a.conversations}   "
              f"lost or wrong: {a.conversations - turns}")
        for e in errors[:5]:
            print(f"[{label}]   {e}")
        for path in profilers.paths if profilers is not None else []:
            print(f"[{label}] profile (py-spy, collapsed stacks) {path}")
        if n_workers == 1 and correct:
            for line in await _turn_costs(agent, correct[0]):
                print(f"[{label}] {line}")
        sys.stdout.flush()
        await self.stop_phase(agent, workers)

    def start_profilers(self, workers: list[DurabotProc], name: str) -> Profilers:
        """py-spy on each worker during the measured batch (--profile)."""
        return Profilers(Path(self.args.profile), {f"{name}-worker{i}": w.proc.pid for i, w in enumerate(workers)})

    async def idle_phase(self) -> None:
        a = self.args
        agent, workers, task_queue = await self.start_phase("idle", 1)
        w = workers[0]
        rss_start = w.rss()
        with RssSampler(workers) as rss:
            wall, latencies, errors = await self.run_turns(agent, "idle", a.idle, a.concurrency)
        self.fake.timings()
        await asyncio.sleep(a.settle)  # every turn has ended; let the worker settle
        samples = []
        for _ in range(5):
            samples.append(w.rss())
            await asyncio.sleep(0.2)
        running = await _count_running(agent, task_queue)
        print(f"--- 1 worker holding {a.idle} idle conversations (one turn each, workflows open, idle timeout 1 h)")
        print(f"[idle] turns                           {len(latencies)}/{a.idle} correct in {wall:.2f} s "
              f"({len(latencies) / wall:.1f} turns/s)   lost or wrong: {a.idle - len(latencies)}")
        print(f"[idle] open workflows on the task queue {running}")
        print(f"[idle] worker RSS at start             {rss_start / MB:8.1f} MB")
        print(f"[idle] worker RSS, all idle            {statistics.median(samples) / MB:8.1f} MB   "
              f"(target < 300 MB; peak while running {rss.peak[0] / MB:.1f} MB)")
        print(f"[idle] worker RSS per idle conversation {(statistics.median(samples) - rss_start) / max(a.idle, 1) / 1024:8.1f} KB")
        for e in errors[:5]:
            print(f"[idle]   {e}")
        sys.stdout.flush()
        await self.stop_phase(agent, workers)

    async def cleanup(self) -> None:
        for agent in list(self.agents):
            await _close_agent(agent)
        for w in self.workers:
            try:
                w.stop()
            except Exception:
                pass
        self.fake.stop()
        self.redis.stop()
        self.temporal.stop()


def _machine_busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0) + getattr(t, "steal", 0)


async def _close_agent(agent: Any) -> None:
    try:
        await asyncio.wait_for(agent.close(), 10)
        await asyncio.wait_for(agent.event_bus.close(), 5)
        await asyncio.wait_for(agent.store.close(), 5)
    except Exception:
        pass


async def _turn_costs(agent: Any, conversation: str) -> list[str]:
    """What the server did for the conversation's one-tool turn (a new conversation), and for a second
    one-tool turn in the same conversation, read from its history (turn_cost.py)."""
    try:
        await asyncio.wait_for(agent.run(f"use a tool again for {conversation}", conversation_id=conversation),
                               60)
        events = await asyncio.wait_for(history_events(agent.handle(conversation)), 10)
    except Exception as exc:
        return [f"history of one turn: unknown ({type(exc).__name__})"]
    first, *rest = turns(events)
    out = [f"one-tool turn, new conversation: {cost(first).line()}",
           f"  by type: {cost(first).kinds()}"]
    if rest:
        out += [f"one-tool turn, next in a conversation: {cost(rest[0]).line()}",
                f"  by type: {cost(rest[0]).kinds()}"]
    return out


async def _count_running(agent: Any, task_queue: str) -> str:
    try:
        n = await asyncio.wait_for(agent.client.count_workflows(
            f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"), 10)
        return str(n.count)
    except Exception as exc:  # visibility may lag or not support the query
        return f"unknown ({type(exc).__name__})"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


async def main(args: argparse.Namespace) -> int:
    bench = Bench(args)

    async def body() -> int:
        bench.start_servers()
        print(f"tool lookup runs as a {'regular' if args.regular_tools else 'local'} activity")
        print(f"durabot throughput: fake model {TTFT * 1000:.0f} ms to first token, {TOKENS} tokens at "
              f"{TOKEN_DELAY * 1000:.0f} ms; {os.cpu_count()} CPUs; Temporal dev server, Redis and the fake model "
              f"on this machine; client in the benchmark process")
        sys.stdout.flush()
        if not args.skip_throughput:
            for n in (1, 2):
                await asyncio.wait_for(bench.throughput_phase(n), args.phase_timeout)
        if args.idle:
            await asyncio.wait_for(bench.idle_phase(), args.phase_timeout)
        return 0

    return await guarded(bench, body, f"a phase took longer than {args.phase_timeout:g} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--idle", type=int, default=1000, help="idle conversations for the memory phase (0: skip)")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up conversations before each throughput phase")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait before measuring idle RSS")
    parser.add_argument("--turn-timeout", type=float, default=120.0)
    parser.add_argument("--phase-timeout", type=float, default=900.0)
    parser.add_argument("--profile", metavar="DIR", help="record py-spy profiles of the workers into DIR")
    parser.add_argument("--skip-throughput", action="store_true", help="only the idle-memory phase")
    parser.add_argument("--regular-tools", action="store_true",
                        help="run the tool as a regular activity, not a local one (DURABOT_LOCAL_TOOLS)")
    run_main(main, parser)
