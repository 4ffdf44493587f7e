"""Example tools shipped with durabot: one plain, one that needs approval, one that returns a file."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent_core import Attachment, ToolContext, ToolOutput, tool


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


@tool
async def make_csv(rows: list[list[str]], name: str = "table.csv") -> ToolOutput:
    """Build a CSV file from rows (the first row is the header) and attach it to the answer."""
    if not name.lower().endswith(".csv"):
        name += ".csv"
    out = io.StringIO()
    csv.writer(out).writerows([[str(cell) for cell in row] for row in rows])
    data = out.getvalue().encode()
    return ToolOutput(f"Attached {name}: {len(rows)} row(s), {len(data)} bytes.",
                      [Attachment(name, data=data, media_type="text/csv")])


EXAMPLE_TOOLS = [get_time, deploy, make_csv]
