"""Client-side rate budgets, kept a little inside Slack's documented limits so a 429 is rare.

- chat.update: ~50 per minute per workspace (Tier 3). Modelled as a sliding window, the strictest
  reading of "50 per minute", so the adapter never exceeds it even when every thread bursts at once.
- chat.postMessage: ~1 per second per channel, short bursts allowed: a token bucket per channel.
A 429's Retry-After pauses the whole budget it belongs to.
"""

from __future__ import annotations

import time
from collections import deque

from bots.core.cache import BoundedCache

UPDATE_LIMIT = 48  # chat.update per window per workspace (Slack: ~50 a minute)
UPDATE_WINDOW = 61.0  # seconds; one extra second absorbs network jitter between us and Slack
POST_RATE = 0.95  # chat.postMessage per second per channel (Slack: ~1)
POST_BURST = 3


class SlidingWindow:
    def __init__(self, limit: int = UPDATE_LIMIT, window: float = UPDATE_WINDOW) -> None:
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
    def __init__(self, rate: float = POST_RATE, burst: float = POST_BURST) -> None:
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

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)


class PostBudgets:
    """One TokenBucket per channel, for the channels posted to lately.

    A bucket left alone for ``idle`` seconds has refilled and any pause is over, so forgetting it
    loses nothing; an adapter that runs for weeks keeps only the channels it posts to now."""

    def __init__(self, maxsize: int = 10_000, idle: float = 600.0) -> None:
        self._buckets: BoundedCache[str, TokenBucket] = BoundedCache(maxsize, ttl=idle)

    def get(self, channel: str) -> TokenBucket:
        bucket = self._buckets.get(channel)
        if bucket is None:
            bucket = TokenBucket()
        self._buckets[channel] = bucket  # every use restarts its idle clock
        return bucket

    def __len__(self) -> int:
        return len(self._buckets)
