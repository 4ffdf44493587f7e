"""Slack's rate budgets, kept a little inside Slack's documented limits so a 429 is rare.

- chat.update: ~50 per minute per workspace (Tier 3): a sliding window per workspace, so the adapter
  never exceeds it even when every thread bursts at once.
- chat.postMessage: ~1 per second per channel, short bursts allowed: a token bucket per channel.
The shapes are in bots/core/ratelimit.py.
"""

from __future__ import annotations

from bots.core.ratelimit import SlidingWindow, TokenBuckets

UPDATE_LIMIT = 48  # chat.update per window per workspace (Slack: ~50 a minute)
UPDATE_WINDOW = 61.0  # seconds; one extra second absorbs network jitter between us and Slack
POST_RATE = 0.95  # chat.postMessage per second per channel (Slack: ~1)
POST_BURST = 3
UPLOAD_BYTES = 1024 * 1024 * 1024  # one uploaded file (Slack: 1 GB)
UPLOAD_FILES = 10  # files attached to one answer


def update_window(limit: int = UPDATE_LIMIT, window: float = UPDATE_WINDOW) -> SlidingWindow:
    """A workspace's chat.update budget."""
    return SlidingWindow(limit, window)


def fair_interval(window: SlidingWindow, base: float, users: int, reserve: int = 0,
                  now: float | None = None) -> float:
    """Seconds between two calls of one of ``users`` callers that share ``window`` (with ``reserve``
    calls kept free for others): ``base`` while the window has room for another round of every caller,
    so a few callers get all of a budget the others leave unused; then each caller's fair share of the
    window, so that they take turns instead of racing for its last calls."""
    room = window.limit - reserve
    if window.used(now) + users < room:
        return base
    return max(base, users * window.window / max(1, room))


class PostBudgets(TokenBuckets):
    """The chat.postMessage budget of each channel posted to lately."""

    def __init__(self, maxsize: int = 10_000, idle: float = 600.0) -> None:
        super().__init__(POST_RATE, POST_BURST, maxsize, idle)


# Native streaming (chat.startStream / appendStream / stopStream). Start and stop are Tier 2 (~20 a
# minute per workspace each), append Tier 4 (~100 a minute, with bursts).
STREAM_START_LIMIT = 18
STREAM_STOP_LIMIT = 18
STREAM_APPEND_LIMIT = 95
STREAM_WINDOW = 61.0
ROLLOVER_RESERVE = 2  # starts kept free for answers that roll over to a new message


class StreamBudget:
    """One workspace's native-streaming budget, and whether the workspace refused streaming."""

    def __init__(self, start: int = STREAM_START_LIMIT, stop: int = STREAM_STOP_LIMIT,
                 append: int = STREAM_APPEND_LIMIT, window: float = STREAM_WINDOW) -> None:
        self.start = SlidingWindow(start, window)
        self.stop = SlidingWindow(stop, window)
        self.append = SlidingWindow(append, window)
        self.refused: str | None = None  # the error a streaming call answered, once for good
        self.streams = 0  # streams open now in the workspace

    def admit(self, now: float | None = None) -> bool:
        """Take a start for a new answer now if one is free, keeping room for rollovers and for the
        stops of the streams already open; False: stream this answer by edits instead."""
        if self.refused:
            return False
        if self.start.delay(ROLLOVER_RESERVE, now) > 0:
            return False
        self.start.record(now)
        return True

    def append_interval(self, base: float, now: float | None = None) -> float:
        """Seconds between two appends of one stream (see ``fair_interval``)."""
        return fair_interval(self.append, base, self.streams, now=now)
