"""``/durabot audit [@user|#channel|tool] [since]``: what the words mean, and the lines of the answer.

The same on every platform: mentions arrive as ``<@U123>`` / ``<@U123|name>`` (Slack) or ``<@123>`` /
``<@!123>`` (Discord), channels as ``<#C123|name>`` / ``<#123>``; ``since`` is ``30m``, ``12h``,
``7d``, ``2w`` or a date (``2026-12-01``); any other word is a tool name. Each adapter words the
people and places in its own markup through the two callables ``lines`` takes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .audit import AuditFilter, AuditRecord

__all__ = ["AUDIT_USAGE", "MAX_LINES", "parse_audit", "lines"]

MAX_LINES = 20  # an ephemeral answer stays readable; the command line exports everything
AUDIT_USAGE = ("`/durabot audit [@user|#channel|tool] [since]` (admins): since is 30m, 12h, 7d, 2w or a "
               "date such as 2026-12-01; `durabot audit --json` exports everything.")

_USER = re.compile(r"^<@!?([A-Za-z0-9]+)(?:\|[^>]*)?>$")
_CHANNEL = re.compile(r"^<#([A-Za-z0-9]+)(?:\|[^>]*)?>$")
_AGO = re.compile(r"^(\d{1,5})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_TOOL = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


@dataclass(frozen=True)
class Parsed:
    filter: AuditFilter | None
    problem: str | None = None


def parse_audit(text: str, workspace: str, now: datetime | None = None, limit: int = MAX_LINES + 1) -> Parsed:
    """The filter ``text`` asks for within ``workspace``, or the problem to tell."""
    user = channel = tool = None
    since: datetime | None = None
    now = now or datetime.now(UTC)
    for word in text.split():
        if m := _USER.match(word):
            user = m.group(1)
        elif m := _CHANNEL.match(word):
            channel = m.group(1)
        elif m := _AGO.match(word):
            since = now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
        elif re.match(r"^\d{4}-\d{2}-\d{2}", word):
            try:
                since = datetime.fromisoformat(word)
            except ValueError:
                return Parsed(None, f"{word!r} is not a date. {AUDIT_USAGE}")
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
        elif _TOOL.match(word) and tool is None:
            tool = word
        else:
            return Parsed(None, f"{word!r} is not a person, a channel, a tool or a time. {AUDIT_USAGE}")
    return Parsed(AuditFilter(workspace=workspace, user=user, channel=channel, tool=tool, since=since,
                              limit=limit))


def lines(records: list[AuditRecord], person: Callable[[str], str], place: Callable[[AuditRecord], str]) -> list[str]:
    """One line per record, newest first, at most ``MAX_LINES`` and a last line when more matched."""
    out = []
    for r in records[:MAX_LINES]:
        what = r.tool or r.command or ""
        if r.arguments_digest:
            what += f" (arguments {r.arguments_digest[:8]})"
        name = f" ({r.user_name})" if r.user_name else ""
        out.append(f"• {r.at.astimezone(UTC):%Y-%m-%d %H:%M}Z {person(r.user_id)}{name} — {r.action}: "
                   f"{what} → {r.outcome} · {place(r)}")
    if len(records) > MAX_LINES:
        out.append("… more records match; narrow it down, or export them with `durabot audit --json`.")
    return out
