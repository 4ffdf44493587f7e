"""The facts behind ``/durabot runs`` and ``status``, the same on every platform.

Which conversations someone may list is the platform's call (a channel, a guild, a workspace: a
conversation id prefix); what is listed, in which order, how much of it and what a run is doing
are decided here, and each adapter only words them in its own markup.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.service import RPCError, RPCStatusCode

from agent_core import Agent
from agent_core.listing import UNKNOWN, running_query
from agent_core.types import ConversationStatus

__all__ = [
    "MAX_RUNS", "SCAN", "Listing", "age", "allowed", "build", "context", "end_conversations", "feedback",
    "find_runs", "more_line", "step", "tools", "waiting",
]

log = logging.getLogger(__name__)

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


async def end_conversations(agent: Agent, prefix: str, concurrency: int = 16) -> int:
    """Ask every running conversation under ``prefix`` to stop (a workspace or guild that removed the
    app); returns how many were asked.

    Temporal's workflow cancellation, not termination: the running turn's activities are cancelled and
    the conversation ends as cancelled, with nothing more to deliver, wherever it was."""
    query = running_query([agent.workflow_id(prefix)], agent.task_queue)
    gate = asyncio.Semaphore(concurrency)

    async def end(workflow_id: str) -> bool:
        async with gate:
            try:
                await agent.client.get_workflow_handle(workflow_id).cancel()  # the latest run: it may have continued
                return True
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:  # NOT_FOUND: it ended meanwhile
                    log.warning("conversation %s not cancelled: %s", workflow_id, exc.message)
                return False

    asked = [end(ex.id) async for ex in agent.client.list_workflows(query)]
    return sum(await asyncio.gather(*asked))


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


def build(status: ConversationStatus) -> str | None:
    """The worker build the conversation runs on, when workers run versioned (DURABOT_BUILD_ID)."""
    return status.build_id or None


def waiting(status: ConversationStatus) -> list[str]:
    """The tools of the current turn's approvals still pending."""
    return [a.tool for a in status.current.approvals if a.status == "pending"] if status.current else []


def allowed(status: ConversationStatus) -> list[tuple[str, str]]:
    """(tool, who allowed it) of the tools allowed for the whole thread, until revoked."""
    return [(a.tool, a.by) for a in status.allowances]
def feedback(status: ConversationStatus) -> tuple[int, int] | None:
    """(up, down): the conversation's ratings of its answers, each person's latest per answer; None
    when its workflow predates ratings."""
    if status.feedback is None:
        return None
    return status.feedback.up, status.feedback.down


def context(status: ConversationStatus, now: datetime | None = None) -> str | None:
    """How full the model's context is and when older turns were last summarised, when known:
    ``2,345 of 7,000 tokens (34%); older turns summarised after turn 120, 3m ago``."""
    if not status.context_budget:
        return None  # a run without a token budget (started by an older version)
    if status.context_tokens:
        share = round(100 * status.context_tokens / status.context_budget)
        text = f"{status.context_tokens:,} of {status.context_budget:,} tokens ({share}%)"
    else:
        text = f"no model request yet, {status.context_budget:,} tokens of room"
    if status.summarised_turn is not None:
        when = f", {age(status.summarised_at, now)} ago" if status.summarised_at else ""
        text += f"; older turns summarised after turn {status.summarised_turn}{when}"
    else:
        text += "; nothing summarised yet"
    return text


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
