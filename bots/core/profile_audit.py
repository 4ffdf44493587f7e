"""Profile changes in the audit trail: when an adapter starts with a profiles file whose profile is new
or has another version than the last one recorded, that is one record per profile.

Nobody clicks to change a profile (someone edits the file and redeploys), so the record names the file
as the actor and the version as the digest; its workspace is ``*`` so every workspace's admins see it.
"""

from __future__ import annotations

from agent_core.profiles import ProfileSet

from .audit import Action, AuditFilter, AuditLog, AuditRecord, Where, Who

__all__ = ["ALL_WORKSPACES", "record_profile_changes"]

ALL_WORKSPACES = "*"


async def record_profile_changes(log: AuditLog, profiles: ProfileSet | None) -> list[str]:
    """Record the profiles that changed since the last record; their names."""
    if profiles is None:
        return []
    earlier = await log.find(AuditFilter(workspace=ALL_WORKSPACES, limit=None))
    last: dict[str, str | None] = {}
    for rec in earlier:  # newest first
        if rec.action == Action.PROFILE_CHANGE and rec.tool is not None:
            last.setdefault(rec.tool, rec.arguments_digest)
    changed = []
    who = Who("config", f"profiles file {profiles.source}")
    where = Where("config", ALL_WORKSPACES, ALL_WORKSPACES, link=profiles.source)
    for name, profile in sorted(profiles.profiles.items()):
        before = last.get(name)
        if before == profile.version:
            continue
        outcome = f"version {profile.version}" + (f" (was {before})" if before else " (new)")
        await log.write(AuditRecord.of(Action.PROFILE_CHANGE, outcome, who, where, tool=name,
                                       arguments_digest=profile.version, command=f"profile {name}"))
        changed.append(name)
    return changed
