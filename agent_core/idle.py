"""When a conversation's run ends for want of messages: one timer per idle period. Workflow code."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Callable

from temporalio import workflow

IDLE_TIMER_PATCH = "idle-timer-per-period"
# A shorter idle timeout after a turn (its profile's mode changed, e.g. autonomous to interactive)
# cancels the sleeping timer and starts one of the new length: a change of commands.
SHORTER_IDLE_PATCH = "profile-mode-idle"
# Runs without the patch marker that started before this used a timer per wait (development builds only).
_UNMARKED_PER_PERIOD_SINCE = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)


def timer_per_period() -> bool:
    """Which idle timer this run uses: a change of commands, so it must match the run's history.

    Runs that record the patch marker use one timer per idle period. Runs without it started either
    on the first released code, which already used one timer per idle period (it had no marker), or
    on earlier development builds, which started a timer on every wait for a message; the time the
    run started tells them apart.
    """
    if workflow.patched(IDLE_TIMER_PATCH):
        return True
    return workflow.info().start_time >= _UNMARKED_PER_PERIOD_SINCE


class IdleWatch:
    """Sets ``idle`` once ``seconds`` pass with nothing to do (``busy()`` false) since ``touch()``."""

    def __init__(self, seconds: float, busy: Callable[[], bool]) -> None:
        self.seconds = seconds
        self.busy = busy
        self.last_active = workflow.now()
        self.idle = False
        self._task: asyncio.Task | None = None

    def touch(self) -> None:
        self.last_active = workflow.now()

    def set_seconds(self, seconds: float) -> None:
        """A new idle timeout from now on. A longer one is read when the timer fires; a shorter one
        re-arms the watch at once, or a week-long timer of an autonomous mode would keep a
        conversation that became interactive open for the week."""
        shorter = seconds < self.seconds
        self.seconds = seconds
        if shorter and self._task is not None and not self._task.done() and workflow.patched(SHORTER_IDLE_PATCH):
            self._task.cancel()
            self._task = asyncio.create_task(self._watch())

    def start(self) -> asyncio.Task:
        self.idle = False
        self._task = asyncio.create_task(self._watch())
        return self._task

    async def _watch(self) -> None:
        # It re-arms only after it fires, not at every turn.
        while True:
            remaining = self.seconds if self.busy() else (
                self.seconds - (workflow.now() - self.last_active).total_seconds())
            if remaining <= 0:
                self.idle = True
                return
            await workflow.sleep(remaining)
