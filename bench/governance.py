"""Governance costs: audit writes and thread allowances per turn, and reading a large audit trail.

1. Budgets: the check-and-claim a message makes at the door and a model round's charge (real Redis),
   p50 / p95 over 1,000 of each. One audit record written (what a decision, allowance, revocation or cancel adds to its click or
   command): p50 / p95 over 1,000 sequential writes to SQLite (the default database).
2. A turn whose tool is allowed for the thread against the same turn with an ungated tool (a real
   Temporal dev server, the embedded worker, the fixed-latency fake model): the allowance lookup's cost.
3. ``durabot audit --json`` over 100,000 records: the export in-process and as a whole command (a new
   Python process: imports, settings, query, JSON), and an admin's filtered ``/durabot audit`` query.
Targets: added latency per turn p50 <= 5 ms; ``durabot audit`` over 100,000 records <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from common import fake_model, ms, pct, summary

from agent_core import Agent, OpenAIChatModel, TemporalConfig, tool
from bots.core.audit import Action, AuditFilter, AuditLog, AuditRecord, Where, Who, digest, table
from tests.fakes.openai_server import Reply
from workers.audit_cli import export
from agent_core.budgets import RedisBudgets
from agent_core.types import BudgetScope
from workers.servers import RedisServer, TemporalDevServer

ROOT = Path(__file__).resolve().parent.parent


def record(i: int, at: datetime | None = None) -> AuditRecord:
    who = Who(f"U{i % 50:03d}", f"person {i % 50}")
    where = Where("slack", "T1", f"C{i % 20:02d}", f"{1700000000 + i}.000100",
                  f"https://example.slack.com/archives/C{i % 20:02d}/p{1700000000 + i}000100", f"slack:T1:C{i % 20:02d}:x")
    rec = AuditRecord.of(Action.APPROVAL, "approved", who, where, tool=f"tool_{i % 7}",
                         arguments_digest=digest(str(i)))
    if at is not None:
        rec.at = at
    return rec


async def audit_writes(url: str, n: int) -> list[float]:
    log = AuditLog.open(url)
    times = []
    for i in range(n):
        start = time.perf_counter()
        assert await log.write(record(i))
        times.append(time.perf_counter() - start)
    return times


async def budget_checks(n: int) -> tuple[list[float], list[float]]:
    """What budgets add to a turn: the check-and-claim at the door and one round's charge (real Redis)."""
    server = RedisServer().start()
    budgets = RedisBudgets(server.url)
    scope = BudgetScope("slack:T1:U1", "slack:T1:C1", 10**12, 10**12)
    starts, charges = [], []
    try:
        for i in range(n):
            t = time.perf_counter()
            assert (await budgets.start(scope)).ok
            starts.append(time.perf_counter() - t)
            t = time.perf_counter()
            await budgets.charge(scope, 100, f"bench:{i}")
            charges.append(time.perf_counter() - t)
    finally:
        await budgets.aclose()
        server.stop()
    return starts, charges


@tool(requires_approval=True)
async def guarded(key: str) -> str:
    """Needs approval (allowed for the thread in the benchmark)."""
    return f"value of {key}"


@tool
async def plain(key: str) -> str:
    """Needs no approval."""
    return f"value of {key}"


def script(body: dict) -> Reply:
    msgs = body["messages"]
    if msgs[-1]["role"] == "user":
        name = "guarded" if "guarded" in msgs[-1]["content"] else "plain"
        return Reply(tool_calls=[(name, {"key": "k"})], ttft=0.02)
    return Reply(tokens=["done"], ttft=0.02)


async def allowance_turns(turns: int) -> tuple[list[float], list[float]]:
    fake = fake_model()
    fake.script = script
    server = TemporalDevServer().start()
    try:
        host, port = server.address.rsplit(":", 1)
        model = OpenAIChatModel("fake", api_key="x", base_url=fake.base_url)
        async with Agent("bench", model=model, tools=[guarded, plain],
                         temporal=TemporalConfig(host=host, port=int(port), task_queue="bench-gov")) as agent:
            first = await agent.run_async("guarded warm-up", conversation_id="allowed")
            while True:
                st = await first.status()
                pending = [a for a in st.approvals if a.status == "pending"]
                if pending:
                    break
                await asyncio.sleep(0.01)
            await agent.decide("allowed", pending[0].id, True, by="bench", scope="thread")
            await first.result(30)
            await agent.run("plain warm-up", conversation_id="plain")
            allowed, ungated = [], []
            for i in range(turns):  # alternate, so both see the same machine load
                for cid, word, out in (("allowed", "guarded", allowed), ("plain", "plain", ungated)):
                    start = time.perf_counter()
                    result = await agent.run(f"{word} {i}", conversation_id=cid)
                    out.append(time.perf_counter() - start)
                    assert result.text == "done", result.text
            return allowed, ungated
    finally:
        server.stop()
        fake.stop()


def fill(url: str, n: int) -> None:
    log = AuditLog.open(url)
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        rec = record(i, now - timedelta(seconds=n - i))
        rows.append({k: v for k, v in vars(rec).items() if k != "id"})
    with log.engine.begin() as conn:
        conn.execute(table.insert(), rows)


def audit_command(url: str, runs: int, records: int) -> list[float]:
    """``durabot audit --json`` as an operator runs it: a new Python process, its output checked."""
    env = {**os.environ, "DURABOT_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    times = []
    with tempfile.TemporaryDirectory() as cwd:  # no .env of this checkout
        for _ in range(runs):
            out = Path(cwd) / "export.json"
            with out.open("w") as sink:
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "workers.cli", "audit", "--json"], env=env, check=True,
                               stdout=sink, cwd=cwd)
                times.append(time.perf_counter() - start)
            with out.open() as exported:  # a whole array of every record, not a fast failure
                assert sum(1 for line in exported if line.startswith("{")) == records
    return times


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--writes", type=int, default=1000)
    p.add_argument("--turns", type=int, default=30)
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--cli-runs", type=int, default=3, help="runs of the durabot audit --json process")
    p.add_argument("--audit-only", action="store_true", help="only the export of --records records")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.audit_only:
            url = f"sqlite:///{tmp}/writes.db"
            print(summary("audit write (SQLite, one record)", asyncio.run(audit_writes(url, args.writes))))
            starts, charges = asyncio.run(budget_checks(args.writes))
            print(summary("budget check-and-claim (Redis)", starts))
            print(summary("budget charge of a round (Redis)", charges))
            per_turn = [a + b for a, b in zip(starts, charges)]
            print(summary("budgets per one-round turn", per_turn))

            allowed, ungated = asyncio.run(allowance_turns(args.turns))
            print(summary("turn, tool allowed for the thread", allowed))
            print(summary("turn, ungated tool", ungated))
            print(f"{'added by the allowance (p50)':<34} {ms(pct(allowed, 50) - pct(ungated, 50))}")

        big = f"sqlite:///{tmp}/big.db"
        start = time.perf_counter()
        fill(big, args.records)
        print(f"{'filled':<34} {args.records:,} records in {time.perf_counter() - start:.1f} s")
        opts = SimpleNamespace(json=True, workspace=None, user=None, channel=None, tool=None, since=None, limit=None)
        runs = []
        for _ in range(3):
            with open(os.devnull, "w") as out:
                start = time.perf_counter()
                count = export(big, opts, out)
                runs.append(time.perf_counter() - start)
        assert count == args.records
        print(summary(f"export of {count:,} (in-process)", runs))
        cli = audit_command(big, args.cli_runs, count)
        print(summary(f"durabot audit --json ({count:,})", cli))
        best, median = min(cli), statistics.median(cli)
        print(f"{'durabot audit --json, new process':<34} best {best:.2f} s, median {median:.2f} s of {len(cli)} "
              f"(target <= 1 s: {'met' if median <= 1.0 else 'NOT met'})")
        if args.audit_only:
            return
        log = AuditLog.open(big)
        queries = []
        for i in range(20):
            start = time.perf_counter()
            found = log.find_sync(AuditFilter(workspace="T1", user=f"U{i:03d}", limit=21))
            queries.append(time.perf_counter() - start)
            assert len(found) == 21
        print(summary("/durabot audit @user (newest 21)", queries))


if __name__ == "__main__":
    main()
