"""Token budgets: exact counters under concurrency (real Redis), charged once per round, and a turn
that crosses its budget midway ends after that round with a notice."""

from __future__ import annotations

import asyncio
import uuid

from agent_core import ToolContext, tool
from agent_core.budgets import InMemoryBudgets, RedisBudgets
from agent_core.types import BudgetScope
from tests.fakes.openai_server import Reply

RAN: list[str] = []


def scope(limit: int | None = 100, channel_limit: int | None = None, override: str | None = None) -> BudgetScope:
    run = uuid.uuid4().hex[:8]
    return BudgetScope(f"slack:T{run}:U1", f"slack:T{run}:C1", limit, channel_limit, override)


async def check_store(store) -> None:
    s = scope(limit=100)
    assert await store.charge(s, 99, "round-1") == (99, 99)
    assert await store.charge(s, 99, "round-1") == (99, 99)  # a retried round is charged once
    results = await asyncio.gather(*(store.start(s) for _ in range(20)))  # twenty turns at the edge
    assert sum(r.ok for r in results) == 1
    refused = next(r for r in results if not r.ok)
    assert (refused.over, refused.used, refused.limit) == ("user", 100, 100)
    assert (await store.start(BudgetScope(s.user_key, s.channel_key, 100, None, override_by="UADMIN"))).ok
    usage = await store.usage(s.user_key)
    assert (usage.tokens_today, usage.turns_today, usage.tokens_month, usage.turns_month) == (101, 2, 101, 2)
    c = scope(limit=None, channel_limit=10)
    await store.charge(c, 10, "round-2")
    assert (await store.start(c)).over == "channel"


async def test_redis_counters_are_exact_under_concurrency(redis_server):
    store = RedisBudgets(redis_server.url)
    try:
        await check_store(store)
    finally:
        await store.aclose()


async def test_in_memory_counters_behave_the_same():
    await check_store(InMemoryBudgets())


@tool
async def lookup(key: str) -> str:
    """Look something up."""
    RAN.append(key)
    return f"value of {key}"


def script(body: dict) -> Reply:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text="final answer", usage=(10, 10))
    return Reply(text="let me look", tool_calls=[("lookup", {"key": "k"})], usage=(400, 200))


async def test_a_turn_crossing_its_budget_stops_after_the_round(make_agent, fake_openai):
    RAN.clear()
    fake_openai.script = script
    agent = await make_agent(tools=[lookup])
    s = scope(limit=500)
    handle = await agent.run_async("look it up", conversation_id="midway", budget=s)
    result = await handle.result(30)
    assert result.text.startswith("let me look\n\nStopped here: this turn used up the day's token budget")
    assert RAN == [] and len(fake_openai.requests) == 1  # the round finished; its tools did not run
    st = await handle.status()
    assert (st.prompt_tokens, st.completion_tokens, st.tokens_estimated) == (400, 200, False)
    assert (await agent.budgets.usage(s.user_key)).tokens_today == 600  # the round (no claim: sent directly)

    fake_openai.requests.clear()
    roomy = scope(limit=100_000)
    done = await (await agent.run_async("look it up", conversation_id="roomy", budget=roomy)).result(30)
    assert done.text == "final answer" and RAN == ["k"]
    assert (await agent.status("roomy")).tokens == 620


async def test_usage_is_estimated_when_the_server_reports_none(make_agent, fake_openai):
    fake_openai.script = lambda body: Reply(text="four words of answer", usage=None)
    agent = await make_agent()
    handle = await agent.run_async("hello there", conversation_id="estimate")
    await handle.result(30)
    st = await handle.status()
    assert st.tokens_estimated and st.prompt_tokens > 0 and st.completion_tokens == len("four words of answer") // 4 + 1


async def test_usage_command_line(redis_server):
    import json
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    store = RedisBudgets(redis_server.url)
    s = scope(limit=None)
    try:
        assert (await store.start(s)).ok
        await store.charge(s, 41, "cli-round")
    finally:
        await store.aclose()
    out = subprocess.run([sys.executable, "-m", "workers.cli", "usage", s.channel_key, "--json"], check=True,
                         capture_output=True, text=True, timeout=60, env=subprocess_env(REDIS_URL=redis_server.url))
    counts = json.loads(out.stdout)[s.channel_key]
    assert (counts["tokens_today"], counts["turns_today"]) == (42, 1)
    refused = subprocess.run([sys.executable, "-m", "workers.cli", "usage", s.channel_key], capture_output=True,
                             text=True, timeout=60, env=subprocess_env())
    assert refused.returncode == 2 and "set REDIS_URL" in refused.stderr
