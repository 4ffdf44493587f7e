"""The delivery worker's lifecycle, the same for every adapter.

Each adapter runs a Temporal worker of its own on ``{task queue}-{platform}`` with one activity,
``durabot.deliver``: the workflow sends a conversation's notices there (the queue is in each
conversation's delivery target, so its name must not change). Stopping is graceful but bounded:
an activity cut off is retried by Temporal on the next adapter, since deliveries are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

__all__ = ["DeliveryWorker", "delivery_queue"]

log = logging.getLogger(__name__)

SHUTDOWN_WAIT = 5.0  # seconds for running deliveries to finish before the worker is cancelled


def delivery_queue(task_queue: str, platform: str) -> str:
    """The adapter's delivery task queue: ``{task queue}-{platform}`` (``durabot-slack``, say)."""
    return f"{task_queue}-{platform}"


class DeliveryWorker:
    def __init__(self, task_queue: str, deliver: Callable[..., Any], *,
                 max_concurrent_activities: int | None = None) -> None:
        self.task_queue = task_queue
        self._deliver = deliver
        self._max_concurrent = max_concurrent_activities
        self._worker: Worker | None = None
        self._task: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self, client: Client) -> None:
        """Start polling the delivery queue; a second call while running does nothing."""
        if self._task is not None:
            return
        extra = {} if self._max_concurrent is None else {"max_concurrent_activities": self._max_concurrent}
        self._worker = Worker(client, task_queue=self.task_queue, activities=[self._deliver], **extra)
        self._task = asyncio.create_task(self._worker.run(), name=f"delivery-worker {self.task_queue}")

    async def stop(self) -> None:
        if self._worker is not None:
            try:
                await asyncio.wait_for(self._worker.shutdown(), SHUTDOWN_WAIT)
            except TimeoutError:
                log.info("deliveries still running on %s after %.0f s; cut off", self.task_queue, SHUTDOWN_WAIT)
            except Exception as exc:  # shutting down: report, do not mask the original exit
                log.warning("delivery worker shutdown: %s", exc)
            self._worker = None
        if self._task is not None:
            self._task.cancel()
            (ended,) = await asyncio.gather(self._task, return_exceptions=True)
            if isinstance(ended, Exception):
                log.debug("delivery worker ended with %r", ended)
            self._task = None
