"""``/durabot revoke <tool>``: end a tool's thread-wide allowance, the same on every platform.

Revoking only narrows what the agent may do, so anyone who may see the conversation may revoke; the
workflow holds the allowance and ends it, and the tool's next call asks for approval again.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_core import Agent
from agent_core.types import Allowance

__all__ = ["Revoked", "revoke"]


@dataclass(frozen=True)
class Revoked:
    tool: str
    allowance: Allowance | None  # None: the tool was not allowed in this thread
    allowed: list[str]  # tools still allowed, for the answer


async def revoke(agent: Agent, conversation_id: str, tool: str, by: str) -> Revoked:
    ended = await agent.revoke(conversation_id, tool, by=by)
    status = await agent.status(conversation_id) if ended is None else None
    still = [a.tool for a in status.allowances] if status is not None else []
    return Revoked(tool, ended, still)
