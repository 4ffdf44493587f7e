"""Ratings of answers (thumbs up / down, an optional comment), the same on every platform.

A platform renders the buttons and reads the clicks; recording the rating on the conversation, its
metric and the words of the acknowledgement are decided here. The rating is recorded durably by the
conversation's workflow (``Agent.rate``: one per answer and person, the latest replaces the earlier).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agent_core import Agent
from agent_core.errors import AgentRuntimeError, UserError
from agent_core.metrics import feedback_total
from agent_core.types import RATINGS

log = logging.getLogger(__name__)

__all__ = ["COMMENT_CHARS", "Rating", "acknowledgement", "record"]

COMMENT_CHARS = 500  # what a comment form accepts


@dataclass(frozen=True)
class Rating:
    """What a click says: which answer (conversation, turn) and how it was rated."""

    conversation_id: str
    turn_id: str
    rating: str  # "up" | "down"

    @property
    def valid(self) -> bool:
        return self.rating in RATINGS and bool(self.conversation_id) and bool(self.turn_id)


async def record(agent: Agent, rating: Rating, by: str, comment: str | None = None) -> str | None:
    """Record ``by``'s rating on the conversation; None when done, else what to tell them."""
    if comment is not None:
        comment = comment.strip()[:COMMENT_CHARS] or None
    try:
        await agent.rate(rating.conversation_id, rating.turn_id, by, rating.rating, comment)
    except UserError as exc:
        log.warning("rating of turn %s in %s refused: %s", rating.turn_id, rating.conversation_id, exc)
        return "That rating could not be recorded; nothing changed."
    except AgentRuntimeError as exc:
        log.warning("rating of turn %s in %s not recorded: %s", rating.turn_id, rating.conversation_id, exc)
        return "The agent could not be reached, so your rating was not recorded; try again in a minute."
    feedback_total.labels(rating=rating.rating).inc()
    return None


def acknowledgement(rating: str, *, comment: bool = False, asking: bool = False) -> str:
    """What the person who rated is told (only they see it)."""
    if comment:
        return "Thanks, your comment was recorded with your rating."
    if rating == "up":
        return "Thanks for the feedback: recorded as helpful."
    if asking:
        return "Thanks for the feedback: recorded as not helpful. The form that opened takes a comment, if you like."
    return "Thanks for the feedback: recorded as not helpful."
