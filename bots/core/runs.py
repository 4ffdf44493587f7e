"""The facts behind ``/durabot runs`` and ``status``, the same on every platform.

Which conversations someone may list is the platform's call (a channel, a guild, a workspace: a
conversation id prefix); what is listed, in which order, how much of it and what a run is doing
are decided here, and each adapter only words them in its own markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from agent_core import Agent
from agent_core.listing import UNKNOWN
from agent_core.types import ConversationStatus

__all__ = ["MAX_RUNS", "SCAN", "Listing", "age", "allowed", "find_runs", "more_line", "step", "tools", "waiting"]

MAX_RUNS = 20  # lines shown
SCAN = 500  # newest conversations asked for their state; older ones are only counted


@dataclass(frozen=True)
class Listing:
    runs: list[ConversationStatus]  # busy ones first, those that did not answer in time last
    unchecked: int  # older conversations counted but not asked

    @property
    def empty(self) -> bool:
        return not self.runs and self.unchecked <= 0

    def more(self, older: str) -> str | None:
        """The line after the first ``MAX_RUNS`` (``older`` names what was not checked), if any."""
        return more_line(len(self.runs), self.unchecked, older)


async def find_runs(agent: Agent, prefix: str, detail_timeout: float, *, idle: bool = True) -> Listing:
    """The conversations under ``prefix``, without the idle ones unless ``idle``."""
    found = await agent.list_conversations(prefix=prefix, limit=SCAN, detail_timeout=detail_timeout)
    unchecked = await agent.count_conversations(prefix) - len(found) if len(found) >= SCAN else 0
    shown = found if idle else [r for r in found if r.state != "idle"]
    # Those that did not answer may be busy: listed, but after the ones known to be.
    ordered = [r for r in shown if r.state != UNKNOWN] + [r for r in shown if r.state == UNKNOWN]
    return Listing(ordered, unchecked)


def more_line(total: int, unchecked: int, older: str) -> str | None:
    more = []
    if total > MAX_RUNS:
        more.append(f"{total - MAX_RUNS} more")
    if unchecked > 0:
        more.append(f"{unchecked} {older} not checked")
    return "… and " + ", ".join(more) if more else None


def step(status: ConversationStatus) -> str | None:
    """What the current turn is doing now, when it says."""
    return status.current.step if status.current and status.current.step else None


def tools(status: ConversationStatus) -> list[str]:
    """The tools the current turn has called so far, in order."""
    return list(status.current.tool_calls) if status.current else []


def waiting(status: ConversationStatus) -> list[str]:
    """The tools of the current turn's approvals still pending."""
    return [a.tool for a in status.current.approvals if a.status == "pending"] if status.current else []


def allowed(status: ConversationStatus) -> list[tuple[str, str]]:
    """(tool, who allowed it) of the tools allowed for the whole thread, until revoked."""
    return [(a.tool, a.by) for a in status.allowances]


def age(started_at: str, now: datetime | None = None) -> str:
    """How long ago ``started_at`` (ISO 8601) was: ``42s``, ``5m``, ``2h07m``; ``?`` when unreadable."""
    try:
        start = datetime.fromisoformat(started_at)
    except (TypeError, ValueError):
        return "?"
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    seconds = max(0, int(((now or datetime.now(UTC)) - start).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
