"""Budget counters lost with Redis (a flush, a new server) are recounted from the conversations'
histories in Temporal: usage and budgets read the same figures after as before, a turn at the budget
edge is still refused, and two processes recounting at once count every round once (real Redis, real
Temporal dev server)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

from agent_core import tool
from agent_core.budget_recount import TemporalRecount
from agent_core.budgets import RedisBudgets
from agent_core.types import BudgetScope
from tests.conftest import subprocess_env
from tests.fakes.openai_server import Reply


@tool
async def lookup(key: str) -> str:
    """Look a key up."""
    return f"value of {key}"


def script(body: dict) -> Reply:
    if body["messages"][-1]["role"] == "user" and "tool" in body["messages"][-1]["content"]:
        return Reply(text="looking", tool_calls=[("lookup", {"key": "k"})], usage=(300, 20))
    return Reply(text="answer", usage=(100, 7))


def own_db(redis_server, db: int) -> str:
    return redis_server.url.rsplit("/", 1)[0] + f"/{db}"  # this test's database: flushing it spares the rest


async def run_turns(agent, budgets: RedisBudgets, ws: str) -> dict[str, BudgetScope]:
    """Four turns as the adapters run them (claim, then submit): two users, two channels, one with a tool."""
    scopes = {}
    for user, channel, text in (("U1", "C1", "hello"), ("U1", "C1", "use a tool"), ("U2", "C1", "hi"),
                                ("U2", "C2", "use a tool")):
        scope = BudgetScope(f"{ws}:{user}", f"{ws}:{channel}", 10_000, 10_000)
        assert (await budgets.start(scope)).ok
        result = await agent.run(text, f"{ws}:{channel}:{user}", budget=scope)
        assert result.text == "answer"
        scopes[user], scopes[channel] = scope, scope
    return scopes


async def figures(budgets: RedisBudgets, ws: str) -> dict[str, tuple[int, int, int, int]]:
    out = {}
    for key in ("U1", "U2", "C1", "C2"):
        u = await budgets.usage(f"{ws}:{key}")
        out[key] = (u.tokens_today, u.turns_today, u.tokens_month, u.turns_month)
    return out


async def test_flushed_counters_are_recounted_from_temporal(make_agent, fake_openai, redis_server):
    fake_openai.script = script
    budgets = RedisBudgets(own_db(redis_server, 7))
    await budgets.redis.flushdb()
    agent = await make_agent(tools=[lookup], budgets=budgets)
    budgets.recount = TemporalRecount(agent)
    ws = f"slack:T{uuid.uuid4().hex[:8]}"
    try:
        await run_turns(agent, budgets, ws)
        before = await figures(budgets, ws)
        # U1: 2 turns (1 token each at the claim), 107 + 320 + 107 tokens of rounds.
        assert before["U1"] == (536, 2, 536, 2) and before["C2"] == (428, 1, 428, 1)
        assert before["C1"] == (before["U1"][0] + 108, 3, before["U1"][0] + 108, 3)

        await budgets.redis.flushdb()  # Redis loses everything
        assert await figures(budgets, ws) == before
        # A round already recounted, charged again (an activity's retry), adds nothing.
        scope = BudgetScope(f"{ws}:U1", f"{ws}:C1")
        keys = [k.decode() async for k in budgets.redis.scan_iter(f"durabot:charged:{ws}:C1:U1:*")]
        assert len(keys) == 3  # one turn of one round, one of two
        assert await budgets.charge(scope, 999, keys[0].removeprefix("durabot:charged:")) == (536, before["C1"][0])

        # At the edge of the recounted budget a turn is still refused; one token below, one starts.
        edge = BudgetScope(f"{ws}:U1", f"{ws}:C9", user_limit=536)
        refused = await budgets.start(edge)
        assert (refused.ok, refused.over, refused.used) == (False, "user", 536)
        await budgets.redis.flushdb()
        below = BudgetScope(f"{ws}:U1", f"{ws}:C9", user_limit=537)
        results = await asyncio.gather(*(budgets.start(below) for _ in range(5)))
        assert sum(r.ok for r in results) == 1
        assert (await figures(budgets, ws))["U1"] == (537, 3, 537, 3)
    finally:
        await budgets.redis.flushdb()
        await budgets.aclose()


async def test_concurrent_recounts_count_each_round_once(make_agent, fake_openai, redis_server, temporal_server,
                                                         task_queue):
    fake_openai.script = script
    url = own_db(redis_server, 8)
    budgets = RedisBudgets(url)
    await budgets.redis.flushdb()
    agent = await make_agent(tools=[lookup], budgets=budgets)
    budgets.recount = TemporalRecount(agent)
    ws = f"slack:T{uuid.uuid4().hex[:8]}"
    others = [RedisBudgets(url, recount=TemporalRecount(agent)) for _ in range(4)]  # four more processes
    try:
        await run_turns(agent, budgets, ws)
        before = await figures(budgets, ws)
        for _ in range(2):
            await budgets.redis.flushdb()
            # Every process finds the counters missing at once; a worker charges a new round meanwhile.
            new_round = budgets.charge(BudgetScope(f"{ws}:U2", f"{ws}:C2"), 50, f"{ws}:C2:U2:new:0")
            recounts = await asyncio.gather(*(b.ensure_counted(ws) for b in others), new_round)
            assert sum(recounts[:-1]) == 1  # exactly one recount added its figures
            after = await figures(budgets, ws)
            assert after["U1"] == before["U1"] and after["C1"] == before["C1"]
            assert after["U2"] == (before["U2"][0] + 50, *before["U2"][1:2], before["U2"][2] + 50, before["U2"][3])
            assert after["C2"][0] == before["C2"][0] + 50

        # The operator's command recounts too (and leaves counters Redis still has alone).
        await budgets.redis.flushdb()
        env = subprocess_env(REDIS_URL=url, TEMPORAL_ADDRESS=temporal_server.address, DURABOT_AGENT_NAME="assistant",
                             DURABOT_TASK_QUEUE=task_queue)
        keys = [f"{ws}:{k}" for k in ("U1", "U2", "C1", "C2")]
        for flags, note in ((["--recount"], True), (["--recount"], False)):
            out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "workers.cli", "usage", *keys, *flags],
                                          capture_output=True, text=True, timeout=60, env=env)
            assert out.returncode == 0, out.stderr
            assert (f"{ws}: recounted from Temporal" in out.stdout) is note
            first = f"{ws}:U1: today {before['U1'][0]:,} tokens in {before['U1'][1]} turn(s)"
            assert first in out.stdout, out.stdout
    finally:
        await budgets.redis.flushdb()
        for b in (budgets, *others):
            await b.aclose()
