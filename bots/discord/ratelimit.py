"""Discord's pacing: message sends and edits per channel, and every REST call against the global limit.

Discord lets a bot send or edit about 5 messages per 5 seconds in one channel (every thread is a
channel of its own), sends and edits sharing the bucket. discord.py honours a 429 by waiting and
retrying, which keeps text from being lost, but every 429 counts towards Discord's invalid-request ban.
Pacing here avoids them: a sliding window per channel (bots/core/ratelimit.py), slightly stricter than
Discord's own.

Above the channels, Discord allows a bot 50 requests a second in all (the global limit), whatever the
route; a process running many shards, each with busy threads, can pass it. ``global_pacer()`` is the
one bucket every REST call of the process waits for (bots/discord/apitrace.py applies it), never more
than 50 calls in any 1.05 seconds; a 429 marked global pauses it for every call. Interaction responses and
follow-ups are not bound to the global limit (Discord's documentation) and are not paced: they have
3 seconds to arrive.
"""

from __future__ import annotations

from bots.core import ratelimit

CHANNELS = 10_000  # channels paced at once; one pushed out only forgets its last few seconds of sends
GLOBAL_LIMIT = 50  # requests a second per bot, every route
GLOBAL_BURST = 5  # sent at once; the rest are spread evenly
GLOBAL_MARGIN = 0.05  # seconds added to Discord's window, for requests that arrive closer than they left
UPLOAD_BYTES = 10 * 1024 * 1024  # one attached file (Discord's limit for a bot outside boosted servers)
UPLOAD_FILES = 10  # files attached to one answer


class ChannelLimiter(ratelimit.ChannelLimiter):
    def __init__(self, per: int = 5, window: float = 5.0, margin: float = 0.1) -> None:
        super().__init__(per, window + margin, platform="discord", channels=CHANNELS)


def global_pacer(limit: int = GLOBAL_LIMIT, burst: int = GLOBAL_BURST,
                 margin: float = GLOBAL_MARGIN) -> ratelimit.Pacer:
    """The process's pace for all REST calls: at most ``limit`` in any second (and a margin)."""
    return ratelimit.Pacer(ratelimit.TokenBucket.at_most(limit, 1.0 + margin, burst), platform="discord")
