"""``/durabot usage``: tokens and turns of a thread, a channel and a person, today and this month.

The counters are ``agent_core.budgets`` (per channel and per person, UTC days and months); a thread's
tokens are its conversation's own count (``ConversationStatus.tokens``). Each adapter decides whom
someone may ask about (themselves and the channel they are in; admins anyone) and words the names.
"""

from __future__ import annotations

from agent_core import Agent
from agent_core.budgets import Usage

__all__ = ["usage_lines"]


def _line(label: str, u: Usage, limit: int | None = None) -> str:
    budget = f" (budget {limit:,} a day)" if limit else ""
    return (f"• {label}: today {u.tokens_today:,} tokens in {u.turns_today:,} turn(s){budget}; "
            f"this month {u.tokens_month:,} tokens in {u.turns_month:,} turn(s)")


async def usage_lines(agent: Agent, *, person: tuple[str, str] | None, channel: tuple[str, str] | None,
                      thread: tuple[str, str] | None = None) -> list[str]:
    """Lines for ``person`` / ``channel`` ((label, budget key)) and ``thread`` ((label, conversation id))."""
    lines = []
    if thread is not None:
        status = await agent.status(thread[1])
        lines.append(f"• {thread[0]}: {status.tokens:,} tokens in {status.turns:,} turn(s) of the current run"
                     if status is not None else f"• {thread[0]}: no conversation running")
    if channel is not None:
        lines.append(_line(channel[0], await agent.budgets.usage(channel[1])))
    if person is not None:
        lines.append(_line(person[0], await agent.budgets.usage(person[1])))
    return lines
