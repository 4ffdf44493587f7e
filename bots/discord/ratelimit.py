"""Client-side pacing of message sends and edits, so the bot stays inside Discord's buckets.

Discord lets a bot send or edit about 5 messages per 5 seconds in one channel (every thread is a
channel of its own), sends and edits sharing the bucket. discord.py honours a 429 by waiting and
retrying, which keeps text from being lost, but every 429 counts towards Discord's invalid-request ban.
Pacing here avoids them: a sliding window per channel, slightly stricter than Discord's own.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from agent_core.metrics import rate_limit_wait_seconds_total


class ChannelLimiter:
    def __init__(self, per: int = 5, window: float = 5.0, margin: float = 0.1) -> None:
        self.per = per
        self.window = window + margin
        self._sent: dict[int, deque[float]] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def acquire(self, channel_id: int) -> None:
        """Wait until one more send or edit in ``channel_id`` fits the window, and count it."""
        lock = self._locks.setdefault(channel_id, asyncio.Lock())
        async with lock:  # first come, first served within a channel
            sent = self._sent.setdefault(channel_id, deque())
            while True:
                now = time.monotonic()
                while sent and now - sent[0] >= self.window:
                    sent.popleft()
                if len(sent) < self.per:
                    sent.append(now)
                    break
                await asyncio.sleep(sent[0] + self.window - now)
                rate_limit_wait_seconds_total.labels(platform="discord").inc(time.monotonic() - now)
        self._forget_idle()

    def _forget_idle(self) -> None:
        if len(self._sent) < 1000:
            return
        now = time.monotonic()
        for cid in [c for c, d in self._sent.items() if not d or now - d[-1] >= self.window]:
            if not self._locks[cid].locked():
                del self._sent[cid], self._locks[cid]
