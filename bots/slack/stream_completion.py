"""Completing a streamed answer with plain messages: after a restart (the stream a dead process left
open), when a stream expired before its end, or when the streamed text was taken back.

``Streamed`` is what the thread shows of a turn's streamed answer, read by the delivery's lookup;
``complete_from`` shows the rest of the answer from one streamed message on, by an edit of that
message and new messages for what does not fit, each keyed like a streamed message so that a retry
finds and skips it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bots.core.split import split_message

from .edits import EditScheduler
from .mrkdwn import to_mrkdwn
from .render import MAX_PART, SECTION_TEXT, segment_key
from .stream_text import open_fence
from .web import SlackWeb


def answer_pieces(markdown: str) -> list[str]:
    """An answer's text as messages of at most ``MAX_PART`` characters, as Slack shows a plain edit."""
    body = to_mrkdwn(markdown).strip() or "_(no answer)_"
    return split_message(body, MAX_PART) or ["_(no answer)_"]


async def complete_from(web: SlackWeb, editor: EditScheduler, channel: str, thread: str, turn_id: str,
                        first: int, ts: str | None, markdown: str, blocks: list[dict] | None,
                        existing: dict[str, str]) -> None:
    """Show ``markdown`` from streamed message ``first`` on: an edit of ``ts`` (when there is one) and
    new messages for the rest, keyed ``{turn}:s{n}``; messages an earlier attempt posted (``existing``,
    by key) are skipped, and those posted now are added to it."""
    pieces = answer_pieces(markdown)
    for i, piece in enumerate(pieces):
        key = segment_key(turn_id, first + i)
        last = blocks if i == len(pieces) - 1 else None
        if i == 0 and ts:
            await editor.send(channel, ts, piece, blocks=_with_text(piece, last), meta_key=key)
        elif key not in existing:
            existing[key] = await web.post(channel, thread, piece, key=key, blocks=_with_text(piece, last))


def _with_text(text: str, blocks: list[dict] | None) -> list[dict] | None:
    """Blocks replace a message's text on screen: with blocks, the text goes in sections first."""
    if not blocks:
        return None
    sections = split_message(text, SECTION_TEXT) or [text]
    return [{"type": "section", "text": {"type": "mrkdwn", "text": s}} for s in sections] + list(blocks)


@dataclass
class Streamed:
    """What the thread shows of a turn's streamed answer: its stopped messages (by index: ts, payload)
    and the one still streaming or left unstopped, if any."""

    stopped: dict[int, tuple[str, dict]] = field(default_factory=dict)
    unstopped: str | None = None
    unstopped_text: str = ""

    def __bool__(self) -> bool:
        return bool(self.stopped) or self.unstopped is not None

    def ended(self) -> bool:
        """Whether the last stopped message is the end (a failed or cancelled turn's notice included)."""
        return bool(self.stopped) and self.unstopped is None and bool(self.stopped[max(self.stopped)][1].get("final"))

    def complete(self, text: str) -> bool:
        """Whether the stopped messages already show all of ``text`` (or the end of a failed turn)."""
        if not self.stopped or self.unstopped is not None:
            return False
        _ts, last = self.stopped[max(self.stopped)]
        if last.get("final"):
            return True
        return last.get("end") == len(text) and text.startswith(str(last.get("head") or ""))

    def resume_at(self, text: str) -> tuple[int, int, str | None]:
        """(index of the next message, where in ``text`` it begins, fence to open) after the stopped ones."""
        if not self.stopped:
            return 0, 0, None
        index = max(self.stopped)
        _ts, last = self.stopped[index]
        end = last.get("end")
        if isinstance(end, int) and 0 <= end <= len(text) and text.startswith(str(last.get("head") or "")):
            return index + 1, end, open_fence(text[:end])
        return index + 1, 0, None  # the stopped ones show another round: show the answer whole after them
