"""Who may decide an approval, and who is an admin: the same rules on every platform.

DURABOT_APPROVERS lists who may decide: "requester" (the person who asked), "anyone", or user ids;
admins (DURABOT_ADMINS, or the platform's own admins) always may. The workflow records this policy
with each approval and its validator has the last word; an adapter checks it itself only for an
approval asked before approvals recorded their policy. The platform's own admin check (Slack's
users.info, Discord's Manage Server) comes in as a narrow callable, asked only when the list does
not already answer.

Admins are admins somewhere. DURABOT_ADMINS and the platform's admins are admins of the whole
workspace or guild; a profile's ``admins`` are admins in the places of that profile only (each channel
that resolves to it), for approvals and for the admin commands alike. An act on a conversation
(cancel, a budget override, its status or usage) happens in the conversation's channel; a command
that looks at a channel (usage, audit) happens in that channel. Acts that span the workspace (listing
every run, the audit trail of every channel) stay with the workspace's admins.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from agent_core.profiles import Profile, ProfileSet

__all__ = ["AdminCheck", "REQUESTER", "ANYONE", "Place", "may_decide", "is_admin", "message_admins",
           "no_platform_admin", "place_of", "profile_admins"]

REQUESTER = "requester"
ANYONE = "anyone"

AdminCheck = Callable[[str], Awaitable[bool]]  # user id -> whether the platform says they are an admin


async def no_platform_admin(_user: str) -> bool:
    return False


def may_decide(user: str, requester: str | None, approvers: Sequence[str], admin: bool = False) -> bool:
    """Whether ``user`` may decide an approval ``requester`` asked for. No approvers listed means the
    requester alone (DURABOT_APPROVERS' default)."""
    approvers = approvers or (REQUESTER,)
    if admin or ANYONE in approvers or user in approvers:
        return True
    return REQUESTER in approvers and user == requester


@dataclass(frozen=True)
class Place:
    """Where an act happens: a channel of a Slack workspace or Discord guild (``@me`` for a DM)."""

    platform: str
    workspace: str
    channel: str


def place_of(conversation_id: str) -> Place | None:
    """The place of a conversation (``platform:workspace:channel:thread``); None for another id."""
    parts = conversation_id.split(":")
    if len(parts) != 4 or not all(parts[:3]):
        return None
    return Place(parts[0], parts[1], parts[2])


def profile_admins(profiles: ProfileSet | None, place: Place | None) -> tuple[str, ...]:
    """The admins the profile of ``place`` adds there (none without profiles or a place)."""
    if profiles is None or place is None:
        return ()
    profile = profiles.resolve(place.platform, place.workspace, place.channel)
    return profile.admins if profile is not None else ()


def message_admins(admins: Sequence[str], profile: Profile | None) -> list[str]:
    """Who may always decide a message's approvals: DURABOT_ADMINS and its profile's admins."""
    extra = profile.admins if profile is not None else ()
    return [*admins, *(a for a in extra if a not in admins)]


async def is_admin(user: str, admins: Sequence[str], platform_admin: AdminCheck = no_platform_admin, *,
                   profiles: ProfileSet | None = None, place: Place | None = None) -> bool:
    """Listed in DURABOT_ADMINS, an admin by the platform's own rights, or (with ``place``) an admin
    of the profile of the place where the act happens. Without ``place``: of the whole workspace."""
    if user in admins or user in profile_admins(profiles, place):
        return True
    return await platform_admin(user)
