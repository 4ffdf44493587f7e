"""Example tools shipped with durabot: one plain, one that needs approval."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent_core import ToolContext, tool


@tool
async def get_time(tz: str = "UTC") -> str:
    """Current date and time in an IANA time zone, for example Europe/Paris."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return f"Unknown time zone {tz!r}; use an IANA name such as UTC or Europe/Paris."
    return datetime.now(zone).strftime(f"%Y-%m-%d %H:%M:%S {tz}")


@tool(requires_approval=True)
async def deploy(service: str, ctx: ToolContext, version: str = "latest") -> str:
    """Deploy a service (a pretend deployment: it changes nothing). Needs a human's approval."""
    return f"Deployed {service} at {version} (deployment id {ctx.idempotency_key[-12:]})."


EXAMPLE_TOOLS = [get_time, deploy]
