"""Pure helpers of native streaming: where a streamed message may end, and code fences at a seam.

A streamed answer is appended to one message until that message is near Slack's size or age limit;
the rest goes on in a new message. A seam inside a fenced code block would break both halves, so the
old message gets a closing fence and the new one opens the same fence again (with its language).
"""

from __future__ import annotations

FENCE = "```"
PREFER_NEWLINE = 2_000  # a cut moves back to the last line break if that loses at most this much room


def open_fence(text: str) -> str | None:
    """The opening line of a code fence ``text`` leaves open (``"```python"``), or None."""
    opening: str | None = None
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith(FENCE):
            opening = None if opening is not None else stripped
    return opening


def cut_at(text: str, room: int) -> int:
    """How much of ``text`` fits in ``room`` characters: all of it, else up to a line break near the end
    of the room (never a cut inside a line when one is close), else exactly ``room``."""
    if len(text) <= room:
        return len(text)
    if room <= 0:
        return 0
    newline = text.rfind("\n", 0, room)
    if newline > 0 and room - newline <= PREFER_NEWLINE:
        return newline + 1
    return room


def close_fence(fence: str | None) -> str:
    """What ends a message whose text leaves ``fence`` open."""
    return f"\n{FENCE}" if fence else ""


def reopen_fence(fence: str | None) -> str:
    """What starts the next message when the seam was inside ``fence``."""
    return f"{fence}\n" if fence else ""
