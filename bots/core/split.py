"""Split a long chat answer into parts that each fit a platform's message size limit.

Used by every adapter (Slack, Discord): a part boundary falls on a paragraph break when one is near
the limit, else a line break, else a space, else a hard cut. A ``` code fence that is open at a
boundary is closed at the end of that part and reopened, with its language tag, at the start of the
next, so every part renders as valid markdown on its own.
"""

from __future__ import annotations

__all__ = ["split_message"]

_FENCE = "```"
_CLOSE = "\n```"
_SEPARATORS = ("\n\n", "\n", " ")


def _fence_state(text: str, state: str | None) -> str | None:
    """Return the open fence's opening line after ``text`` (None when no fence is open).

    ``state`` is the fence open before ``text``. A line that starts with ``` toggles the state; a line
    such as ```x``` that opens and closes on itself does not.
    """
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped.startswith(_FENCE):
            continue
        if state is None:
            if _FENCE in stripped[3:]:
                continue  # inline fenced snippet on one line
            state = stripped
        else:
            state = None
    return state


def _cut_point(chunk: str) -> tuple[int, int]:
    """Where to cut ``chunk`` (already at most the budget long): (end of this part, start of the rest)."""
    half = len(chunk) // 2
    # Prefer the coarsest boundary that keeps the part at least half full, so parts are not tiny.
    for sep in _SEPARATORS:
        idx = chunk.rfind(sep)
        if idx >= half and idx > 0:
            return idx, idx + len(sep)
    for sep in _SEPARATORS:
        idx = chunk.rfind(sep)
        if idx > 0:
            return idx, idx + len(sep)
    return len(chunk), len(chunk)


def split_message(text: str, limit: int) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` characters each (see the module docstring).

    Empty or blank text gives no parts. Linear in the text: the rest is tracked by position, never
    copied, so a 200,000-character answer costs the same per part as a short one.
    """
    if limit < 1:
        raise ValueError(f"limit must be positive, got {limit!r}")
    if not text.strip():
        return []
    parts: list[str] = []
    pos, n = 0, len(text)
    fence: str | None = None  # opening line of a code fence carried over from the previous part
    while pos < n:
        prefix = f"{fence}\n" if fence else ""
        if len(prefix) + n - pos <= limit:
            parts.append(prefix + text[pos:])
            break
        # Reserve room to close a fence whenever one may be open at the cut (whether it is, is known
        # only after the cut). Too small a limit for fences at all: fall back to plain cuts.
        may_fence = bool(fence) or _FENCE in text[pos:pos + limit]
        budget = limit - len(prefix) - len(_CLOSE) if may_fence else limit
        if budget < 1:
            prefix, fence, budget, may_fence = "", None, limit, False
        end, start = _cut_point(text[pos:pos + budget])
        body = text[pos:pos + end]
        open_after = _fence_state(prefix + body, None)
        part = prefix + body
        if open_after is not None and may_fence:
            part += _CLOSE
        if part.strip():
            parts.append(part)
        pos += start
        fence = open_after if may_fence else None
        if fence is None:
            while pos < n and text[pos] == "\n":  # blank lines at a boundary outside code mean nothing
                pos += 1
    return parts
