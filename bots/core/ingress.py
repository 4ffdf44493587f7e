"""Submitting a chat message as a turn: the step of ingress both platforms share.

A platform's ingress (bots/<platform>/ingress.py) translates its payload, then submits here before it
posts a placeholder: an adapter that dies in between loses nothing, because the delivery posts the
answer as a new message when it finds no placeholder.
"""

from __future__ import annotations

from dataclasses import dataclass
from agent_core import Agent, RunHandle
from agent_core.profiles import Profile
from agent_core.types import ChatMessage, DeliveryTarget

from .refs import SEP


@dataclass(frozen=True)
class Submitter:
    agent: Agent
    delivery_queue: str  # where the conversation's notices come back to this platform
    approvers: list[str]
    admins: list[str]

    async def submit(self, text: str, conversation_id: str, *, message_id: str, user: str,
                     user_name: str | None, context: list[ChatMessage], meta: dict[str, str]) -> RunHandle:
        """Send the message to its conversation's workflow; the message id deduplicates a repeat. The
        channel's profile (if profiles are configured) goes with it, and says who may decide."""
        approvers, admins = self.approvers, self.admins
        profile = profile_of(self.agent, conversation_id)
        if profile is not None:
            approvers = list(profile.approvers) if profile.approvers is not None else approvers
            admins = [*admins, *(a for a in profile.admins if a not in admins)]
        return await self.agent.run_async(
            text, conversation_id, message_id=message_id, user=user, user_name=user_name, context=context,
            deliver_to=DeliveryTarget(task_queue=self.delivery_queue, meta=meta),
            approvers=approvers, admins=admins,
            profile=profile.ref(self.agent.tools) if profile is not None else None,
        )


def profile_of(agent: Agent, conversation_id: str) -> Profile | None:
    """The profile of a conversation's place (its channel's, its workspace's or the default)."""
    if agent.profiles is None:
        return None
    parts = conversation_id.split(SEP)
    if len(parts) != 4:
        return agent.profiles.resolve("", None, None)
    return agent.profiles.resolve(parts[0], parts[1], parts[2])
