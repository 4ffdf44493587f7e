"""Approve / Deny clicks: who may decide, and what the clicker is told. The card itself is edited by
the ``approval_decided`` delivery, so one writer owns it and a click never races a timeout."""

from __future__ import annotations

import logging
import re

from agent_core import Agent
from agent_core.errors import AgentRuntimeError, ApprovalError, ConversationNotFound
from agent_core.settings import Settings

from .ids import ApprovalButton

log = logging.getLogger(__name__)


def may_decide(user: str, requested_by: str, settings: Settings) -> bool:
    """The requester (unless approvers are listed without "requester"), listed approvers, admins."""
    approvers = settings.approvers or ["requester"]
    if user in settings.admins or "anyone" in approvers or user in approvers:
        return True
    return "requester" in approvers and user == requested_by


def refusal(button: ApprovalButton, settings: Settings) -> str:
    who = []
    if "requester" in (settings.approvers or ["requester"]):
        who.append(f"<@{button.requested_by}> (who asked)")
    listed = [a for a in settings.approvers if a not in ("requester", "anyone")]
    if listed or settings.admins:
        who.append("the configured approvers and admins")
    return (f":no_entry: You cannot decide this request; only {' or '.join(who) or 'an admin'} can. "
            "Nothing changed.")


async def decide(agent: Agent, button: ApprovalButton, user: str) -> str | None:
    """Send the decision; None when accepted, else the explanation to show the clicker."""
    try:
        await agent.decide(button.conversation_id, button.approval_id, button.decision == "approve", by=user)
    except ConversationNotFound:
        return ":information_source: This run has ended; its approvals are closed. Nothing changed."
    except ApprovalError as exc:
        return f":information_source: Nothing changed: {_explain(str(exc))}"
    except AgentRuntimeError as exc:
        log.warning("decision on %s failed: %s", button.approval_id, exc)
        return ":warning: The agent could not be reached; please click again in a minute."
    return None


def _explain(message: str) -> str:
    lower = message.lower()
    if "already" in lower:
        message = re.sub(r"by ([UW][A-Z0-9]+)\b", r"by <@\1>", message)
        return re.sub(r"^approval '[^']*'", "this request", message) + "."
    if "ended" in lower or "not found" in lower or "no approval" in lower:
        return "this request is no longer open (its run has ended or restarted)."
    return message
