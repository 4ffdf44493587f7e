"""Recount a workspace's token use from Temporal: the fallback truth behind the Redis counters.

Every model round charged to a budget is an LLM activity in its conversation's history: the request
holds the budget scope, the conversation, turn and round (the charge key), the result holds the
tokens. Every message that claimed a turn is a submit update (or signal) carrying its ``UserMessage``
with the same scope. The conversations of a workspace are found by one visibility query on the
workflow id prefix (``{agent}/{platform}:{workspace}:``, see listing.py) among the runs still open or
closed since the tally's start; their histories are read concurrently. Sub-agents' runs share the
prefix and their rounds carry the same scope.

Called rarely: after Redis lost the counters, and once per workspace on a new day (the day marker).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client

from .budgets import Tally
from .contract import LLM_ACTIVITY, WORKFLOW, Signal, Update
from .listing import quoted
from .types import LLMRequest, LLMResult, UserMessage

__all__ = ["TemporalRecount", "recount_workspace"]

log = logging.getLogger(__name__)

CONCURRENCY = 16  # histories read at once
_SUBMITS = (Update.SUBMIT.value, Update.SUBMIT_AND_WAIT.value, Update.SUBMIT_AND_FOLLOW.value)


class TemporalRecount:
    """``RedisBudgets.recount`` for an agent: its client, its workflow ids and its task queue."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent

    async def __call__(self, workspace: str, since: datetime) -> Tally:
        return await recount_workspace(self.agent.client, self.agent.workflow_id(f"{workspace}:"),
                                       self.agent.task_queue, since)


async def recount_workspace(client: Client, id_prefix: str, task_queue: str, since: datetime) -> Tally:
    """The rounds and turns since ``since`` of the conversations whose workflow id starts ``id_prefix``."""
    query = (f"WorkflowType = {quoted(WORKFLOW)} AND TaskQueue = {quoted(task_queue)} "
             f"AND WorkflowId STARTS_WITH {quoted(id_prefix)} "
             f"AND (ExecutionStatus = 'Running' OR CloseTime >= '{since.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}')")
    runs = [(ex.id, ex.run_id) async for ex in client.list_workflows(query)]
    gate = asyncio.Semaphore(CONCURRENCY)
    tally = Tally()
    rounds: dict[str, tuple[str, int, str, str, str]] = {}
    turns: dict[tuple[str, str], tuple[str, str, str]] = {}

    async def read(workflow_id: str, run_id: str | None) -> None:
        async with gate:
            history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        await _tally_history(client, workflow_id, history.events, since, rounds, turns)

    await asyncio.gather(*(read(wid, rid) for wid, rid in runs))
    tally.rounds, tally.turns = list(rounds.values()), list(turns.values())
    log.debug("recounted %d run(s) under %s: %d round(s), %d turn(s)", len(runs), id_prefix,
              len(tally.rounds), len(tally.turns))
    return tally


async def _tally_history(client: Client, workflow_id: str, events: Any, since: datetime,
                         rounds: dict[str, tuple[str, int, str, str, str]],
                         turns: dict[tuple[str, str], tuple[str, str, str]]) -> None:
    decode = client.data_converter.decode
    requests: dict[int, LLMRequest] = {}
    for event in events:
        when = event.event_time.ToDatetime(tzinfo=UTC)
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == LLM_ACTIVITY:
                (req,) = await decode(attrs.input.payloads, [LLMRequest])
                if req.budget is not None:
                    requests[event.event_id] = req
        elif event.HasField("activity_task_completed_event_attributes"):
            attrs = event.activity_task_completed_event_attributes
            req = requests.get(attrs.scheduled_event_id)
            if req is None or when < since or req.budget is None:
                continue
            (result,) = await decode(attrs.result.payloads, [LLMResult])
            once = f"{req.conversation_id}:{req.turn_id}:{req.round}"  # the charge key of activities.py
            rounds[once] = (once, result.prompt_tokens + result.completion_tokens, req.budget.user_key,
                            req.budget.channel_key, f"{when:%Y-%m-%d}")
        elif when < since:
            continue
        elif event.HasField("workflow_execution_update_accepted_event_attributes"):
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            if request.input.name in _SUBMITS:
                _turn(await decode(request.input.args.payloads, [UserMessage]), workflow_id, when, turns)
        elif event.HasField("workflow_execution_signaled_event_attributes"):
            attrs = event.workflow_execution_signaled_event_attributes
            if attrs.signal_name == Signal.SUBMIT.value:
                _turn(await decode(attrs.input.payloads, [UserMessage]), workflow_id, when, turns)


def _turn(decoded: list[Any], workflow_id: str, when: datetime,
          turns: dict[tuple[str, str], tuple[str, str, str]]) -> None:
    msg = decoded[0] if decoded else None
    if isinstance(msg, UserMessage) and msg.budget is not None:  # a repeat of a message id is one turn
        turns.setdefault((workflow_id, msg.id), (msg.budget.user_key, msg.budget.channel_key, f"{when:%Y-%m-%d}"))
