"""Shared parts of the benchmarks: servers, the fixed-latency fake model, percentiles."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.openai_server import FakeOpenAI, Reply  # noqa: E402

TTFT = 0.100  # the fake model's time to first token
TOKEN_DELAY = 0.005
TOKENS = 20
ANSWER_TOKENS = [f"tok{i} " for i in range(TOKENS)]


def fixed_latency_script(body: dict) -> Reply:
    """One tool call when the question says 'tool', then (or otherwise) a 20-token answer."""
    msgs = body["messages"]
    if msgs[-1]["role"] == "user" and "tool" in (msgs[-1].get("content") or "") and body.get("tools"):
        return Reply(tool_calls=[("lookup", {"key": "k"})], ttft=TTFT)
    return Reply(tokens=ANSWER_TOKENS, ttft=TTFT, token_delay=TOKEN_DELAY)


def fake_model() -> FakeOpenAI:
    return FakeOpenAI(fixed_latency_script).start()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def summary(name: str, values: list[float]) -> str:
    return f"{name:<34} p50 {ms(pct(values, 50))}  p95 {ms(pct(values, 95))}  mean {ms(statistics.mean(values))}"
