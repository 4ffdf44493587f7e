"""Who may decide an approval, and who is an admin: the same rules on every platform.

DURABOT_APPROVERS lists who may decide: "requester" (the person who asked), "anyone", or user ids;
admins (DURABOT_ADMINS, or the platform's own admins) always may. The workflow records this policy
with each approval and its validator has the last word; an adapter checks it itself only for an
approval asked before approvals recorded their policy. The platform's own admin check (Slack's
users.info, Discord's Manage Server) comes in as a narrow callable, asked only when the list does
not already answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

__all__ = ["AdminCheck", "REQUESTER", "ANYONE", "may_decide", "is_admin", "no_platform_admin"]

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


async def is_admin(user: str, admins: Sequence[str], platform_admin: AdminCheck = no_platform_admin) -> bool:
    """Listed in DURABOT_ADMINS, or an admin by the platform's own rights."""
    return user in admins or await platform_admin(user)
