"""Submitting a chat message as a turn: the step of ingress both platforms share.

A platform's ingress (bots/<platform>/ingress.py) translates its payload, then submits here before it
posts a placeholder: an adapter that dies in between loses nothing, because the delivery posts the
answer as a new message when it finds no placeholder.
"""

from __future__ import annotations

from dataclasses import dataclass
from agent_core import Agent, RunHandle
from agent_core.types import ChatMessage, DeliveryTarget


@dataclass(frozen=True)
class Submitter:
    agent: Agent
    delivery_queue: str  # where the conversation's notices come back to this platform
    approvers: list[str]
    admins: list[str]

    async def submit(self, text: str, conversation_id: str, *, message_id: str, user: str,
                     user_name: str | None, context: list[ChatMessage], meta: dict[str, str],
                     note: str | None = None) -> RunHandle:
        """Send the message to its conversation's workflow; the message id deduplicates a repeat.
        ``note``: a line of context from the platform (what the user is looking at), passed to the
        model after the message's text."""
        if note:
            text = f"{text}\n\n{note}"
        return await self.agent.run_async(
            text, conversation_id, message_id=message_id, user=user, user_name=user_name, context=context,
            deliver_to=DeliveryTarget(task_queue=self.delivery_queue, meta=meta),
            approvers=self.approvers, admins=self.admins,
        )
