"""Thumbs up / down on answers: Slack's feedback buttons in, the rating recorded, a private thanks out.

A click records the rating at once. A thumbs down also opens a small form (views.open with the
click's trigger_id) for an optional comment; its submission records the rating again with the
comment, replacing the first (one rating per answer and person). Recording, its metric and the
words are platform-neutral (bots/core/feedback.py); this module only reads Slack's payloads.
"""

from __future__ import annotations

import json
import logging

from agent_core import Agent
from bots.core.feedback import Rating, acknowledgement, record

from .ids import parse_conversation_id, parse_feedback
from .render import comment_modal
from .web import SlackCallError, SlackWeb

log = logging.getLogger(__name__)

NOT_UNDERSTOOD = "These buttons are not ones I understand; nothing was recorded."


def _where(body: dict) -> tuple[str, str, str, str]:
    """(team, user, channel, thread) of a click."""
    user = body.get("user") or {}
    team = str(user.get("team_id") or (body.get("team") or {}).get("id") or "")
    channel = str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or "")
    message = body.get("message") or {}
    return team, str(user.get("id") or ""), channel, str(message.get("thread_ts") or "")


def _belongs(rating: Rating, team: str, channel: str) -> bool:
    """The answer rated is in the channel clicked in (a value naming another conversation is forged)."""
    ref = parse_conversation_id(rating.conversation_id)
    return ref is not None and ref.channel == channel and (not team or ref.team == team)


class FeedbackClicks:
    def __init__(self, agent: Agent, web: SlackWeb) -> None:
        self.agent = agent
        self.web = web

    async def on_click(self, body: dict, action: dict) -> None:
        team, user, channel, thread = _where(body)
        if not user or not channel:
            return
        rating = parse_feedback(str(action.get("value") or ""))
        if rating is None or not _belongs(rating, team, channel):
            await self.web.ephemeral(channel, user, NOT_UNDERSTOOD, thread or None)
            return
        asking = False
        if rating.rating == "down":  # the form first: its trigger_id is good for 3 seconds only
            asking = await self._ask_comment(str(body.get("trigger_id") or ""), rating, channel, thread)
        problem = await record(self.agent, rating, user)
        await self.web.ephemeral(channel, user, problem or acknowledgement(rating.rating, asking=asking),
                                 thread or None)

    async def _ask_comment(self, trigger_id: str, rating: Rating, channel: str, thread: str) -> bool:
        if not trigger_id:
            return False
        meta = json.dumps({"c": rating.conversation_id, "t": rating.turn_id, "ch": channel, "th": thread})
        try:
            await self.web.call("views.open", trigger_id=trigger_id, view=comment_modal(meta))
        except SlackCallError as exc:
            log.info("comment form for turn %s not opened: %s", rating.turn_id, exc)
            return False
        return True

    async def on_submit(self, body: dict, view: dict) -> None:
        user = str((body.get("user") or {}).get("id") or "")
        team = str((body.get("user") or {}).get("team_id") or (body.get("team") or {}).get("id") or "")
        try:
            meta = json.loads(str(view.get("private_metadata") or ""))
            rating = Rating(str(meta["c"]), str(meta["t"]), "down")
            channel, thread = str(meta["ch"]), str(meta.get("th") or "")
        except (ValueError, KeyError, TypeError):
            log.warning("feedback form submitted without its metadata; ignored")
            return
        if not user or not rating.valid or not _belongs(rating, team, channel):
            return
        values = ((view.get("state") or {}).get("values") or {}).get("comment") or {}
        comment = str((values.get("comment") or {}).get("value") or "")
        problem = await record(self.agent, rating, user, comment or None)
        await self.web.ephemeral(channel, user, problem or acknowledgement("down", comment=bool(comment.strip())),
                                 thread or None)
