"""``durabot usage KEY...``: tokens and turns of budget scopes today and this month, from the counters
in Redis (``REDIS_URL``). A key is ``<platform>:<workspace>:<user or channel id>``, for example
``slack:T012:C034`` (a channel) or ``discord:1234:5678`` (a person or a channel).

``--recount``: a workspace whose counters Redis lost (a flush, a new server) is recounted first from
its conversations' histories in Temporal (``TEMPORAL_ADDRESS``, ``DURABOT_AGENT_NAME``,
``DURABOT_TASK_QUEUE``), as the adapters do on their first message; counters Redis still has are
left as they are."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from agent_core.errors import UserError


def add_arguments(p: Any) -> None:
    p.add_argument("keys", nargs="+", help="budget scopes: platform:workspace:user-or-channel")
    p.add_argument("--json", action="store_true", help="one JSON object: key -> counts")
    p.add_argument("--recount", action="store_true",
                   help="recount from Temporal the workspaces whose counters Redis lost (a flush, a new Redis)")


async def show(redis_url: str | None, args: Any, settings: Any = None) -> str:
    if not redis_url:
        raise UserError("the usage counters live in Redis: set REDIS_URL to the adapters' and workers' Redis")
    from agent_core.budgets import RedisBudgets, workspace_of

    budgets = RedisBudgets(redis_url)
    notes = []
    try:
        if getattr(args, "recount", False):
            if settings is None:
                raise UserError("--recount needs the Temporal settings (TEMPORAL_ADDRESS...)")
            budgets.recount = await _recount(settings)
            for workspace in sorted({workspace_of(k) for k in args.keys}):
                if await budgets.ensure_counted(workspace):
                    notes.append(f"{workspace}: recounted from Temporal")
        found = {key: await budgets.usage(key) for key in args.keys}
    finally:
        await budgets.aclose()
    if args.json:
        return json.dumps({k: asdict(u) for k, u in found.items()})
    return "\n".join([*notes, *(f"{k}: today {u.tokens_today:,} tokens in {u.turns_today:,} turn(s); "
                                f"this month {u.tokens_month:,} tokens in {u.turns_month:,} turn(s)"
                                for k, u in found.items())])


async def _recount(settings: Any) -> Any:
    """The recount of the configured agent's conversations (its workflow ids and task queue)."""
    from agent_core.budget_recount import recount_workspace
    from agent_core.types import workflow_id_for

    client = await settings.temporal_config().connect()

    async def recount(workspace: str, since: Any) -> Any:
        return await recount_workspace(client, workflow_id_for(settings.agent_name, f"{workspace}:"),
                                       settings.task_queue, since)

    return recount
