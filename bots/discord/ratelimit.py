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
from bots.core.cache import BoundedCache

CHANNELS = 10_000  # channels paced at once; one pushed out only forgets its last few seconds of sends


class ChannelLimiter:
    def __init__(self, per: int = 5, window: float = 5.0, margin: float = 0.1) -> None:
        self.per = per
        self.window = window + margin
        self._channels: BoundedCache[int, tuple[deque[float], asyncio.Lock]] = BoundedCache(CHANNELS)

    async def acquire(self, channel_id: int) -> None:
        """Wait until one more send or edit in ``channel_id`` fits the window, and count it."""
        state = self._channels.get(channel_id)
        if state is None:
            state = self._channels[channel_id] = (deque(), asyncio.Lock())
        sent, lock = state
        async with lock:  # first come, first served within a channel
            while True:
                now = time.monotonic()
                while sent and now - sent[0] >= self.window:
                    sent.popleft()
                if len(sent) < self.per:
                    sent.append(now)
                    break
                await asyncio.sleep(sent[0] + self.window - now)
                rate_limit_wait_seconds_total.labels(platform="discord").inc(time.monotonic() - now)
