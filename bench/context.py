"""Does the model still see what it needs late in a conversation? A 50-turn conversation of short
messages (odd turns plain, even turns one tool call); every turn states a new fact and asks for the
fact of an earlier turn. The fake model answers from what it is sent, so a wrong answer means the
fact was not in the request. Prints wrong answers, user messages the last request held, and, for the
small context, summaries made and the largest request.

    python bench/context.py                      # this checkout
    python bench/context.py --before DIR         # and the same against another checkout's code (DIR)

Runs: this code with the model's default budget (gpt-4o-mini: 128,000 tokens), and with a 2,000-token
model (summaries carry the older facts; the fake summariser keeps every fact it is shown, so this
measures the plumbing, not a real model's summaries).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(os.environ.get("BENCH_CODE") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))

from agent_core import Agent, OpenAIChatModel, TemporalConfig, tool  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI, Reply  # noqa: E402
from workers.servers import TemporalDevServer  # noqa: E402

TURNS = 50
SUMMARY_MARK = "You keep the memory of a long chat"  # agent_core.context.SUMMARY_INSTRUCTIONS
FACT = re.compile(r"fact (\d+): the code is (K\d{3})")


def code(t: int) -> str:
    return f"K{t * 37 % 1000:03d}"


def asked(t: int) -> int:
    return random.Random(t).randint(1, t)


def message(t: int) -> str:
    text = f"Note fact {t}: the code is {code(t)}. What is the code of fact {asked(t)}?"
    return text + (" Look it up first." if t % 2 == 0 else "")


def model_script(body: dict) -> Reply:
    msgs = body["messages"]
    seen = dict(FACT.findall(" ".join(m.get("content") or "" for m in msgs)))
    if SUMMARY_MARK in (msgs[0].get("content") or ""):
        return Reply(text="; ".join(f"fact {k}: the code is {v}" for k, v in sorted(seen.items(), key=lambda kv: int(kv[0]))))
    last_user = next(m["content"] for m in reversed(msgs) if m["role"] == "user")
    if msgs[-1]["role"] == "user" and "Look it up" in last_user and body.get("tools"):
        return Reply(tool_calls=[("lookup", {"key": "facts"})])
    q = re.search(r"code of fact (\d+)\?", last_user).group(1)
    return Reply(text=f"The code of fact {q} is {seen[q]}." if q in seen else f"I do not know fact {q}.")


@tool
async def lookup(key: str) -> str:
    """Look something up."""
    return f"nothing new under {key!r}"


async def one_run(label: str, context_tokens: int | None, limit: int | None) -> dict:
    server = TemporalDevServer().start()
    fake = FakeOpenAI(model_script).start()
    if limit is not None:
        fake.context_limit = limit
    host, port = server.address.rsplit(":", 1)
    config = TemporalConfig(host=host, port=int(port), task_queue=f"bench-{uuid.uuid4().hex[:6]}")
    model = OpenAIChatModel("gpt-4o-mini", api_key="k", base_url=fake.base_url)
    extra = {"context_tokens": context_tokens} if context_tokens else {}
    wrong, started = [], time.monotonic()
    try:
        async with Agent("bench", model=model, tools=[lookup], temporal=config, **extra) as agent:
            for t in range(1, TURNS + 1):
                result = await agent.run(message(t), conversation_id="recall")
                if code(asked(t)) not in result.text:
                    wrong.append(f"{t}(asked {asked(t)})")
    finally:
        fake.stop()
        server.stop()
    rounds = [b for b in fake.requests if SUMMARY_MARK not in (b["messages"][0].get("content") or "")]
    last = rounds[-1]["messages"]
    return {
        "label": label, "wrong": wrong, "seconds": round(time.monotonic() - started, 1),
        "user_messages_in_last_request": sum(m["role"] == "user" for m in last),
        "summaries": len(fake.requests) - len(rounds),
        "largest_request_tokens": max(getattr(fake, "request_tokens", None) or [0]),
        "refused": getattr(fake, "overflows", 0),
    }


def report(r: dict) -> None:
    line = (f"{r['label']:<40} wrong {len(r['wrong']):2d} of {TURNS}   user messages in the last request "
            f"{r['user_messages_in_last_request']:2d}   {r['seconds']:5.1f} s")
    if r["summaries"] or r["largest_request_tokens"]:
        line += f"   summaries {r['summaries']}, largest request {r['largest_request_tokens']} tokens, refused {r['refused']}"
    if r["wrong"]:
        line += "\n    wrong at turns " + ", ".join(r["wrong"])
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="DIR", help="also measure another checkout's code")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one run, printed as JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(asyncio.run(one_run(args.one, None, None))))
        return
    if args.before:
        env = dict(os.environ, BENCH_CODE=str(Path(args.before).resolve()))
        out = subprocess.run([sys.executable, __file__, "--one", "before (a count of messages)"], env=env,
                             check=True, capture_output=True, text=True).stdout
        report(json.loads(out.strip().splitlines()[-1]))
    report(asyncio.run(one_run("token budget, gpt-4o-mini (128,000)", None, None)))
    for window in (4_000, 2_000):
        report(asyncio.run(one_run(f"token budget, a {window:,}-token model", window, window)))


if __name__ == "__main__":
    main()
