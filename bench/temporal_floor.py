"""Temporal's own floor for the shapes of a durabot turn, measured on the same server and machine.

A workflow that does nothing but what a turn's shape needs, with no-op activities, driven the way
durabot drives a conversation (an update per message, the answer when the update completes):
- first step: the update sent until its first activity runs (what time to first token cannot beat);
- plain: an update whose turn is one activity (a turn without tools);
- one tool: activity, local activity, activity (a one-tool turn whose tool runs locally).
Nothing of durabot runs here; durabot's overhead above these is what its own code costs.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

_STARTED: dict[str, float] = {}


@activity.defn(name="floor.step")
async def step(marker: str) -> str:
    _STARTED.setdefault(marker, time.perf_counter())
    return marker


@workflow.defn(name="FloorConversation")
class FloorConversation:
    def __init__(self) -> None:
        self.queue: list[tuple[str, bool]] = []
        self.done: set[str] = set()

    @workflow.run
    async def run(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self.queue))
            marker, tool = self.queue.pop(0)
            timeout = timedelta(seconds=10)
            await workflow.execute_activity(step, marker, start_to_close_timeout=timeout)
            if tool:
                await workflow.execute_local_activity(step, marker + ":tool", start_to_close_timeout=timeout)
                await workflow.execute_activity(step, marker + ":answer", start_to_close_timeout=timeout)
            self.done.add(marker)

    @workflow.update
    async def turn(self, marker: str, tool: bool) -> None:
        self.queue.append((marker, tool))
        await workflow.wait_condition(lambda: marker in self.done)


class Floor:
    """The floor workflow on a fresh task queue with its own worker: ``turn`` runs one turn of a shape."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.queue = f"floor-{uuid.uuid4().hex[:8]}"
        self.worker = Worker(client, task_queue=self.queue, workflows=[FloorConversation], activities=[step],
                             workflow_runner=UnsandboxedWorkflowRunner())
        self.count = 0

    async def __aenter__(self) -> "Floor":
        await self.worker.__aenter__()
        self.handle = await self.client.start_workflow(FloorConversation.run, id=self.queue, task_queue=self.queue)
        for _ in range(3):  # warm-up
            await self.turn(False)
            await self.turn(True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.handle.terminate()
        await self.worker.__aexit__(*exc)

    async def turn(self, tool: bool) -> tuple[float, float]:
        """(update sent until the first activity runs, until the update's answer), in seconds."""
        self.count += 1
        marker = f"{self.count}:{tool}"
        t0 = time.perf_counter()
        await self.handle.execute_update(FloorConversation.turn, args=[marker, tool])
        whole = time.perf_counter() - t0
        first = _STARTED.pop(marker) - t0
        _STARTED.clear()
        return first, whole


async def cpu_per_turn(client: Client, server_pid: int | None, turns: int = 200, concurrency: int = 50,
                       tool: bool = False) -> tuple[float, float]:
    """CPU seconds per turn of the floor workflow, ``turns`` conversations of one turn each, ``concurrency``
    at a time: (this process: client and worker, the server). Compare with durabot's same figures."""
    import asyncio

    import psutil

    def cpu(p: psutil.Process | None) -> float:
        if p is None:
            return 0.0
        t = p.cpu_times()
        return t.user + t.system

    queue = f"floor-cpu-{uuid.uuid4().hex[:8]}"
    me, srv = psutil.Process(), psutil.Process(server_pid) if server_pid else None
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:  # as durabot takes a message: one update-with-start; the conversation stays open
            start = WithStartWorkflowOperation(FloorConversation.run, id=f"{queue}-{i}", task_queue=queue,
                                               id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
            await client.execute_update_with_start_workflow(FloorConversation.turn, args=[f"{i}", tool],
                                                            start_workflow_operation=start)

    async with Worker(client, task_queue=queue, workflows=[FloorConversation], activities=[step],
                      workflow_runner=UnsandboxedWorkflowRunner(), max_cached_workflows=concurrency * 4):
        await asyncio.gather(*(one(-i - 1) for i in range(10)))  # warm-up
        c0, s0 = cpu(me), cpu(srv)
        await asyncio.gather(*(one(i) for i in range(turns)))
        _STARTED.clear()
        return (cpu(me) - c0) / turns, (cpu(srv) - s0) / turns
