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


class PostBudgets(TokenBuckets):
    """The chat.postMessage budget of each channel posted to lately."""

    def __init__(self, maxsize: int = 10_000, idle: float = 600.0) -> None:
        super().__init__(POST_RATE, POST_BURST, maxsize, idle)
