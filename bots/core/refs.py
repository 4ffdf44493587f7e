"""Where a conversation lives, the same shape on every platform: ``{platform}:{workspace}:{channel}:{thread}``.

The conversation id is a workflow id of every conversation already running, so its spelling is part
of the contract: each platform's ``ids.py`` decides what goes into the four parts (a Slack thread ts,
a Discord guild or ``@me``) and its own button encodings; the joining and splitting happen here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConversationRef", "conversation_prefix", "split_conversation_id"]

SEP = ":"


@dataclass(frozen=True)
class ConversationRef:
    platform: str  # "slack" | "discord"
    workspace: str  # a Slack team, a Discord guild ("@me" for a DM)
    channel: str
    thread: str  # as spelled in the id (a platform's ids.py says what it means)

    @property
    def conversation_id(self) -> str:
        return SEP.join((self.platform, self.workspace, self.channel, self.thread))


def split_conversation_id(conversation_id: str, platform: str) -> tuple[str, str, str] | None:
    """(workspace, channel, thread) of one of ``platform``'s conversation ids; None for anything else."""
    parts = conversation_id.split(SEP)
    if len(parts) != 4 or parts[0] != platform or not all(parts[1:]):
        return None
    return parts[1], parts[2], parts[3]


def conversation_prefix(platform: str, workspace: str, channel: str | None = None) -> str:
    """The id prefix shared by every conversation of a workspace, or of one channel in it."""
    parts = (platform, workspace) if channel is None else (platform, workspace, channel)
    return SEP.join(parts) + SEP
