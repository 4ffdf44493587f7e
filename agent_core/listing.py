"""Listing running conversations: the server filters, each one is asked for its state concurrently.

The workflow id is ``{agent}/{conversation id}`` and conversation ids start with the place they live in
(``slack:{team}:{channel}:…``, ``discord:{guild}:{channel}:…``), so one visibility query on the id
prefix (``WorkflowId STARTS_WITH '…'``) returns exactly the conversations of a channel, a workspace or
a guild. ``STARTS_WITH`` is part of Temporal's list filter on every advanced visibility store (the dev
server's SQLite, MySQL 8 / PostgreSQL 12 with server 1.20+, Elasticsearch, Temporal Cloud); no custom
search attribute is needed.

A conversation's detail (turns, step, approvals) comes from its status query, which a worker answers.
Queries run concurrently and stop at a deadline; a conversation that has not answered by then is
listed with ``state == "unknown"`` and its start time, never left out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

from temporalio.client import Client

from .contract import WORKFLOW
from .errors import UserError
from .types import ConversationStatus

log = logging.getLogger(__name__)

UNKNOWN = "unknown"  # the state of a conversation that did not answer its status query in time
PAGE_SIZE = 200
CONCURRENCY = 32  # status queries in flight at once; more does not help on a busy worker

StatusQuery = Callable[[str, str], Awaitable[ConversationStatus | None]]  # (workflow id, conversation id)


def quoted(value: str) -> str:
    """A string literal of Temporal's list filter.

    A backslash inside a literal is not taken literally by every visibility store (the dev server's
    SQLite store is one), so a value holding one, or a control character, is refused rather than
    matched wrongly; platform ids never contain them.
    """
    if "\\" in value or any(ord(c) < 32 for c in value):
        raise UserError(f"{value!r} cannot be used in a conversation listing: "
                        "it must hold no backslash and no control character")
    return "'" + value.replace("'", "\\'") + "'"


def running_query(workflow_id_prefixes: Iterable[str], task_queue: str) -> str:
    prefixes = sorted(set(workflow_id_prefixes))
    ids = " OR ".join(f"WorkflowId STARTS_WITH {quoted(p)}" for p in prefixes)
    return (f"WorkflowType = {quoted(WORKFLOW)} AND ExecutionStatus = 'Running' "
            f"AND TaskQueue = {quoted(task_queue)} AND ({ids})")


def unanswered(conversation_id: str, started: datetime | None) -> ConversationStatus:
    return ConversationStatus(conversation_id=conversation_id, state=UNKNOWN, turns=0, current=None,
                              queued=0, started_at=started.isoformat() if started else "")


async def list_running(
    client: Client,
    query: str,
    id_offset: int,
    ask: StatusQuery,
    limit: int,
    detail_timeout: float | None,
) -> list[ConversationStatus]:
    """Up to ``limit`` running conversations, newest first (the visibility store's order).

    Status queries start while later pages are still being read; ``detail_timeout`` (seconds from the
    call) bounds the wait for their answers. A conversation that ended between the listing and its
    query is left out: it no longer runs.
    """
    loop = asyncio.get_running_loop()
    deadline = None if detail_timeout is None else loop.time() + detail_timeout
    gate = asyncio.Semaphore(CONCURRENCY)
    listed: list[tuple[str, datetime | None, asyncio.Task[ConversationStatus | None]]] = []

    async def detail(workflow_id: str, conversation_id: str) -> ConversationStatus | None:
        async with gate:
            return await ask(workflow_id, conversation_id)

    try:
        async for ex in client.list_workflows(query, limit=limit, page_size=min(limit, PAGE_SIZE)):
            conversation_id = ex.id[id_offset:]
            listed.append((conversation_id, ex.start_time,
                           asyncio.create_task(detail(ex.id, conversation_id))))
        tasks = [t for _, _, t in listed]
        if tasks:
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if pending:
                log.info("%d of %d conversations did not answer their status query in time",
                         len(pending), len(tasks))
        out: list[ConversationStatus] = []
        for conversation_id, started, task in listed:
            if task.cancelled():
                out.append(unanswered(conversation_id, started))
                continue
            exc = task.exception()
            if exc is not None:
                log.warning("status query of %r failed: %s", conversation_id, exc)
                out.append(unanswered(conversation_id, started))
            elif (status := task.result()) is not None:
                out.append(status)
        return out
    finally:
        for _, _, task in listed:
            task.cancel()
        if listed:
            await asyncio.gather(*(t for _, _, t in listed), return_exceptions=True)


async def count_running(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count
