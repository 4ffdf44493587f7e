"""The plain-text fallback's words: a notice as text alone, when its normal form keeps failing.

The same notice on every platform (answer, failure, cancel, approval card), without markdown
conversion, tables or buttons; each platform brings its escaping, its mentions and its own wording
(``PlainWords``). Control characters are removed first (see ``delivery.plain``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent_core.contract import DeliveryKind
from agent_core.types import Delivery

from .delivery import plain
from .split import split_message

__all__ = ["PlainWords", "plain_answer", "plain_card"]

REASON_LIMIT = 300  # characters of a failure's reason shown


@dataclass(frozen=True)
class PlainWords:
    escape: Callable[[str], str]  # text -> safe to show as is (no markup, no pings)
    who: Callable[[str], str]  # a user id -> how to name them
    no_answer: str  # a finished turn without text
    failed_hint: str  # the line after a failure's reason: what to do
    requested_by: str = " requested by "  # between a card's tool and who asked


def plain_answer(d: Delivery, partial: str | None, words: PlainWords, limit: int) -> list[str]:
    """An answer, failure or cancel notice as plain text parts of at most ``limit`` characters."""
    if d.kind == DeliveryKind.TURN_FINISHED:
        text = words.escape(plain(d.text or "").strip()) or words.no_answer
        if d.tool_calls:
            text += "\n\nTools: " + ", ".join(words.escape(plain(t)) for t in d.tool_calls)
    elif d.kind == DeliveryKind.TURN_FAILED:
        reason = " ".join(plain(d.text or "unknown error").split())[:REASON_LIMIT]
        text = f"Sorry, I could not finish this: {words.escape(reason)}\n{words.failed_hint}"
    else:
        by = f" by {words.who(d.by)}" if d.by else ""
        text = "\n\n".join(p for p in (words.escape(plain(partial or "").strip()), f"Run cancelled{by}.") if p)
    return split_message(text, limit) or ["(no answer)"]


def plain_card(d: Delivery, words: PlainWords) -> str:
    """An approval card as plain text: pending (the buttons could not be shown) or decided."""
    info = d.approval
    assert info is not None
    tool = words.escape(plain(info.tool))
    if info.status == "pending":
        return (f"Approval needed: {tool}{words.requested_by}{words.who(info.requested_by)}. The buttons could "
                "not be shown; it expires unless decided, and an admin can stop the run with /durabot cancel.")
    by = f" by {words.who(info.decided_by)}" if info.decided_by else ""
    return f"{tool}: {info.status}{by}"
