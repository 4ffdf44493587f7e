"""Submitting a chat message as a turn: the step of ingress both platforms share.

A platform's ingress (bots/<platform>/ingress.py) translates its payload, then submits here before it
posts a placeholder: an adapter that dies in between loses nothing, because the delivery posts the
answer as a new message when it finds no placeholder. A message's files are downloaded here first
(``bots/core/files.py``): the workflow gets their references, the thread a notice about the ones that
could not be read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from agent_core import Agent, RunHandle
from agent_core.budgets import Start
from agent_core.profiles import Profile
from agent_core.types import BlobRef, ChatMessage, DeliveryTarget

from .files import FileFetcher, Received, RemoteFile

from .budget_gate import Holds, OverBudget, scope_for
from .policy import message_admins
from .refs import SEP

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submitter:
    agent: Agent
    delivery_queue: str  # where the conversation's notices come back to this platform
    approvers: list[str]
    admins: list[str]
    holds: Holds | None = None  # messages past their budget wait here for an admin
    files: FileFetcher | None = field(default=None)  # None: the agent's blob store and file limits

    @property
    def fetcher(self) -> FileFetcher:
        if self.files is None:  # built on first use: a frozen dataclass keeps one per Submitter
            object.__setattr__(self, "files", FileFetcher(self.agent.blobs, self.agent.file_limits))
        assert self.files is not None
        return self.files

    async def receive(self, files: list[RemoteFile]) -> Received:
        """A message's files into the blob store: their references, and what could not be read."""
        if not files:
            return Received()
        return await self.fetcher.fetch_all(files)

    async def context_files(self, messages: list[tuple[ChatMessage, list[RemoteFile]]]) -> list[ChatMessage]:
        """Earlier thread messages with their files read, within the context budget."""
        if not any(files for _, files in messages):
            return [m for m, _ in messages]
        return await self.fetcher.context_files(messages)

    async def submit(self, text: str, conversation_id: str, *, message_id: str, user: str,
                     user_name: str | None, context: list[ChatMessage], meta: dict[str, str],
                     note: str | None = None, attachments: list[BlobRef] | None = None,
                     override_by: str | None = None, existed: bool | None = None) -> RunHandle:
        """Send the message to its conversation's workflow; the message id deduplicates a repeat. The
        channel's profile (if profiles are configured) goes with it, and says who may decide.
        ``note``: a line of context from the platform (what the user is looking at), passed to the
        model after the message's text. ``existed``: whether a conversation ran in this thread
        before, when the platform knows (see ``Agent.run_async``): then the send is the one call to
        Temporal of this message."""
        if note:
            text = f"{text}\n\n{note}"
        approvers, admins = self.approvers, self.admins
        profile = profile_of(self.agent, conversation_id)
        if profile is not None:
            approvers = list(profile.approvers) if profile.approvers is not None else approvers
            admins = message_admins(admins, profile)
        scope = scope_for(conversation_id, user, profile.tokens_per_user_per_day if profile else None,
                          profile.tokens_per_channel_per_day if profile else None, override_by)
        try:
            start = await self.agent.budgets.start(scope)
        except Exception as exc:  # counters unreachable: chat keeps working, this turn is not counted
            log.warning("budget counters unreachable, message let through: %s", exc)
            start = Start(True)
        if not start.ok:
            hold = None
            if self.holds is not None:
                hold = await self.holds.put(conversation_id, message_id, user, user_name, text, meta,
                                            attachments or [], context)
            raise OverBudget(start, hold)
        return await self.agent.run_async(
            text, conversation_id, message_id=message_id, user=user, user_name=user_name, context=context,
            deliver_to=DeliveryTarget(task_queue=self.delivery_queue, meta=meta),
            approvers=approvers, admins=admins, attachments=attachments or [],
            profile=profile.ref(self.agent.tools) if profile is not None else None, budget=scope,
            existed=existed,
        )

    async def close(self) -> None:
        if self.files is not None:
            await self.files.close()


def profile_of(agent: Agent, conversation_id: str) -> Profile | None:
    """The profile of a conversation's place (its channel's, its workspace's or the default)."""
    if agent.profiles is None:
        return None
    parts = conversation_id.split(SEP)
    if len(parts) != 4:
        return agent.profiles.resolve("", None, None)
    return agent.profiles.resolve(parts[0], parts[1], parts[2])
