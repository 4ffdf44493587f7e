"""``durabot usage KEY...``: tokens and turns of budget scopes today and this month, from the counters
in Redis (``REDIS_URL``). A key is ``<platform>:<workspace>:<user or channel id>``, for example
``slack:T012:C034`` (a channel) or ``discord:1234:5678`` (a person or a channel)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from agent_core.errors import UserError


def add_arguments(p: Any) -> None:
    p.add_argument("keys", nargs="+", help="budget scopes: platform:workspace:user-or-channel")
    p.add_argument("--json", action="store_true", help="one JSON object: key -> counts")


async def show(redis_url: str | None, args: Any) -> str:
    if not redis_url:
        raise UserError("the usage counters live in Redis: set REDIS_URL to the adapters' and workers' Redis")
    from agent_core.budgets import RedisBudgets

    budgets = RedisBudgets(redis_url)
    try:
        found = {key: await budgets.usage(key) for key in args.keys}
    finally:
        await budgets.aclose()
    if args.json:
        return json.dumps({k: asdict(u) for k, u in found.items()})
    return "\n".join(f"{k}: today {u.tokens_today:,} tokens in {u.turns_today:,} turn(s); "
                     f"this month {u.tokens_month:,} tokens in {u.turns_month:,} turn(s)" for k, u in found.items())
