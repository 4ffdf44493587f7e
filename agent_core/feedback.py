"""Ratings of answers, kept by the conversation workflow: one per (turn, person), the latest wins.

Pure and deterministic (the workflow imports it): no I/O, no clock; the workflow stamps the time.
The book is carried across continue-as-new and across an idle end (``Carry.feedback``), bounded in
count and size so the carried state stays small however many people rate.
"""

from __future__ import annotations

import dataclasses

from .limits import NAME_CHARS, clip, payload_size
from .types import RATINGS, Feedback, FeedbackCounts

MAX_RATINGS = 200  # kept per conversation; the oldest go first
COMMENT_BYTES = 2_000  # a comment as Temporal encodes it (the modal allows 500 characters)
FEEDBACK_BYTES = 128 * 1024  # all ratings carried to the next run: the oldest beyond it are left out


def refusal(f: Feedback) -> str | None:
    """Why a rating cannot be recorded as it is, or None."""
    if f.rating not in RATINGS:
        return f"rating {f.rating!r} is not one of {', '.join(RATINGS)}"
    if not f.turn_id or len(f.turn_id) > NAME_CHARS:
        return "a rating names the answer's turn id (at most 200 characters)"
    if not f.by or len(f.by) > NAME_CHARS:
        return "a rating names who gave it (at most 200 characters)"
    return None


class FeedbackBook:
    def __init__(self, carried: list[Feedback] | None = None) -> None:
        self._by_key: dict[tuple[str, str], Feedback] = {}
        for f in carried or []:
            self._put(f)

    def record(self, f: Feedback, at: str) -> Feedback:
        """Keep ``f`` (replacing the same person's earlier rating of the same turn); returns what is kept."""
        comment = clip(f.comment, COMMENT_BYTES, "comment") if f.comment and f.comment.strip() else None
        kept = dataclasses.replace(f, comment=comment, at=at)
        self._put(kept)
        return kept

    def merge(self, older: list[Feedback]) -> None:
        """Put a restored run's ratings under the ones this run recorded already (those are newer)."""
        newer = list(self._by_key.values())
        self._by_key.clear()
        for f in [*older, *newer]:
            self._put(f)

    def _put(self, f: Feedback) -> None:
        key = (f.turn_id, f.by)
        self._by_key.pop(key, None)  # re-inserted last: the newest ratings are kept longest
        self._by_key[key] = f
        while len(self._by_key) > MAX_RATINGS:
            del self._by_key[next(iter(self._by_key))]

    def counts(self) -> FeedbackCounts:
        up = sum(1 for f in self._by_key.values() if f.rating == "up")
        return FeedbackCounts(up=up, down=len(self._by_key) - up)

    def get(self, turn_id: str, by: str) -> Feedback | None:
        return self._by_key.get((turn_id, by))

    def carry(self) -> list[Feedback]:
        """The ratings, oldest first, as many of the newest as fit ``FEEDBACK_BYTES``."""
        kept: list[Feedback] = []
        left = FEEDBACK_BYTES
        for f in reversed(self._by_key.values()):
            left -= payload_size(f)
            if left < 0:
                break
            kept.append(f)
        kept.reverse()
        return kept
