"""Client-side rate budgets, so an adapter stays inside its platform's limits and a 429 is rare.

The shapes are the same on every platform; the numbers are each platform's own (bots/slack/limits.py,
bots/discord/ratelimit.py):

- ``SlidingWindow``: at most ``limit`` calls in any ``window`` seconds, the strictest reading of "N a
  minute", with room kept free on request (a reserve for calls that must not wait behind others).
- ``TokenBucket``: a steady rate with short bursts.
- ``TokenBuckets`` and ``ChannelLimiter``: one budget per key (a channel), bounded, so a process that
  runs for weeks keeps only the keys in use now.
- ``Pacer``: one TokenBucket for everything a process sends (a platform's global limit), waited for
  in turn, so a burst from many channels leaves at the bucket's rate instead of all at once.
A 429's Retry-After ``pause``s the budget it belongs to.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Hashable

from agent_core.metrics import rate_limit_wait_seconds_total

from .cache import BoundedCache


async def rate_wait(seconds: float, platform: str) -> None:
    """Sleep because of a rate budget or a Retry-After, and count it."""
    start = time.monotonic()
    try:
        await asyncio.sleep(seconds)
    finally:
        rate_limit_wait_seconds_total.labels(platform=platform).inc(time.monotonic() - start)


class SlidingWindow:
    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.sent: deque[float] = deque()
        self.paused_until = 0.0

    def _trim(self, now: float) -> None:
        while self.sent and self.sent[0] <= now - self.window:
            self.sent.popleft()

    def used(self, now: float | None = None) -> int:
        self._trim(time.monotonic() if now is None else now)
        return len(self.sent)

    def delay(self, reserve: int = 0, now: float | None = None) -> float:
        """Seconds until one more call fits while keeping ``reserve`` calls free (0: now)."""
        now = time.monotonic() if now is None else now
        self._trim(now)
        wait = max(0.0, self.paused_until - now)
        allowed = max(0, self.limit - reserve)
        if len(self.sent) >= allowed:
            if allowed == 0:
                return max(wait, self.window)
            oldest_needed = self.sent[len(self.sent) - allowed]
            wait = max(wait, oldest_needed + self.window - now)
        return wait

    def record(self, now: float | None = None) -> None:
        self.sent.append(time.monotonic() if now is None else now)

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.at = time.monotonic()
        self.paused_until = 0.0

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def delay(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._refill(now)
        wait = max(0.0, self.paused_until - now)
        if self.tokens < 1:
            wait = max(wait, (1 - self.tokens) / self.rate)
        return wait

    def take(self, now: float | None = None) -> None:
        self._refill(time.monotonic() if now is None else now)
        self.tokens -= 1

    def pause(self, seconds: float, now: float | None = None) -> None:
        self.paused_until = max(self.paused_until, (time.monotonic() if now is None else now) + seconds)

    @classmethod
    def at_most(cls, limit: int, window: float, burst: int) -> "TokenBucket":
        """A bucket that never lets more than ``limit`` calls into any ``window`` seconds: ``burst`` at
        once, then the rest of the window's calls spread evenly (burst + rate x window = limit)."""
        if not 0 < burst < limit:
            raise ValueError(f"burst must be between 1 and {limit - 1}, not {burst}")
        return cls((limit - burst) / window, burst)


class Pacer:
    """One bucket for every call a process makes on a platform, waited for in turn (first come,
    first served), so no caller can starve the others; a 429 that names the whole budget ``pause``s it
    for every caller at once."""

    def __init__(self, bucket: TokenBucket, *, platform: str) -> None:
        self.bucket = bucket
        self.platform = platform
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until one more call fits, and count it."""
        async with self._lock:
            # Checked again after every wait: a pause may have come in meanwhile.
            while (wait := self.bucket.delay()) > 0:
                await rate_wait(wait, self.platform)
            self.bucket.take()

    def pause(self, seconds: float) -> None:
        self.bucket.pause(seconds)

    @property
    def paused_until(self) -> float:
        """The ``time.monotonic()`` before which nothing is sent (0: never paused)."""
        return self.bucket.paused_until


class TokenBuckets:
    """One TokenBucket per key, for the keys used lately.

    A bucket left alone for ``idle`` seconds has refilled and any pause is over, so forgetting it
    loses nothing."""

    def __init__(self, rate: float, burst: float, maxsize: int = 10_000, idle: float = 600.0) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: BoundedCache[Hashable, TokenBucket] = BoundedCache(maxsize, ttl=idle)

    def get(self, key: Hashable) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst)
        self._buckets[key] = bucket  # every use restarts its idle clock
        return bucket

    def __len__(self) -> int:
        return len(self._buckets)


class ChannelLimiter:
    """A sliding window per channel, waited for in turn (first come, first served within a channel).

    One pushed out of the bounded map only forgets its last few seconds of calls."""

    def __init__(self, per: int, window: float, *, platform: str, channels: int = 10_000) -> None:
        self.per = per
        self.window = window
        self.platform = platform
        self._channels: BoundedCache[Hashable, tuple[SlidingWindow, asyncio.Lock]] = BoundedCache(channels)

    async def acquire(self, channel: Hashable) -> None:
        """Wait until one more call in ``channel`` fits the window, and count it."""
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = (SlidingWindow(self.per, self.window), asyncio.Lock())
        window, lock = state
        async with lock:
            while (wait := window.delay()) > 0:
                await rate_wait(wait, self.platform)
            window.record()
