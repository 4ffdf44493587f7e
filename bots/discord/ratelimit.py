"""Discord's pacing of message sends and edits, so the bot stays inside Discord's buckets.

Discord lets a bot send or edit about 5 messages per 5 seconds in one channel (every thread is a
channel of its own), sends and edits sharing the bucket. discord.py honours a 429 by waiting and
retrying, which keeps text from being lost, but every 429 counts towards Discord's invalid-request ban.
Pacing here avoids them: a sliding window per channel (bots/core/ratelimit.py), slightly stricter than
Discord's own.
"""

from __future__ import annotations

from bots.core import ratelimit

CHANNELS = 10_000  # channels paced at once; one pushed out only forgets its last few seconds of sends
UPLOAD_BYTES = 10 * 1024 * 1024  # one attached file (Discord's limit for a bot outside boosted servers)
UPLOAD_FILES = 10  # files attached to one answer


class ChannelLimiter(ratelimit.ChannelLimiter):
    def __init__(self, per: int = 5, window: float = 5.0, margin: float = 0.1) -> None:
        super().__init__(per, window + margin, platform="discord", channels=CHANNELS)
