"""What happens when someone clicks Approve or Deny, the same on every platform.

The workflow has the last word on who may decide (each approval records the policy of the message
that asked, and its validator refuses anyone else); the adapter checks the policy itself only for an
approval asked before approvals recorded it. The platform's own admin check comes in as a callable:
Discord knows it with the click (Manage Server), so it is asked first; Slack must call users.info, so
it is asked only after the workflow refused the clicker. Each adapter words the ``Outcome`` itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from agent_core import Agent
from agent_core.approvals import SCOPE_ONCE, SCOPE_THREAD
from agent_core.errors import (
    ApprovalAlreadyDecided,
    ApprovalError,
    ApprovalNotAllowed,
    ApprovalUnknown,
    ConversationNotFound,
    DurabotError,
)
from agent_core.types import ApprovalInfo

from .audit import Action, Recorder, digest
from .policy import AdminCheck, may_decide

__all__ = ["LOOKUP_WAIT", "Outcome", "Verdict", "decide_click"]

log = logging.getLogger(__name__)

LOOKUP_WAIT = 2.0  # seconds for reading an approval from the workflow while the click waits


class Verdict(Enum):
    DECIDED = "decided"
    NOT_ALLOWED = "not_allowed"  # the clicker may not decide this approval
    ENDED = "ended"  # the run has ended: its approvals are closed
    ALREADY_DECIDED = "already_decided"  # decided, expired or cancelled before this click
    GONE = "gone"  # this run holds no such approval (a stale button, or the run moved on)
    NOTHING_CHANGED = "nothing_changed"  # another refusal, worded by the workflow
    UNREACHABLE = "unreachable"  # the agent service did not answer


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    info: ApprovalInfo | None = None  # DECIDED: the approval as decided
    requested_by: str | None = None  # NOT_ALLOWED: who asked, when known
    status: str | None = None  # ALREADY_DECIDED: approved, denied, expired or cancelled, when known
    decided_by: str | None = None  # ALREADY_DECIDED: who decided, when known
    detail: str = ""  # NOTHING_CHANGED: the workflow's reason


async def decide_click(agent: Agent, conversation_id: str, approval_id: str, approve: bool, user: str, *,
                       approvers: Sequence[str], admins: Sequence[str], platform_admin: AdminCheck,
                       admin_known_first: bool, scope: str = SCOPE_ONCE,
                       audit: Recorder | None = None) -> Outcome:
    """Send ``user``'s decision to the workflow. ``admin_known_first``: the platform's admin check is
    free (asked before deciding) rather than a call (asked only after a refusal). ``scope`` "thread":
    Always allow in this thread (the workflow refuses it where the card did not offer it). ``audit``:
    where the decision (or the refusal of the clicker) is recorded, with who and where."""
    asked: list[ApprovalInfo] = []
    outcome = await _decide(agent, conversation_id, approval_id, approve, user, approvers, admins,
                            platform_admin, admin_known_first, scope, asked)
    if audit is not None:
        await _record(audit, outcome, asked[0] if asked else None, approve, scope)
    return outcome


async def _record(audit: Recorder, outcome: Outcome, asked: ApprovalInfo | None, approve: bool, scope: str) -> None:
    info = outcome.info or asked
    what = {"tool": info.tool, "arguments_digest": digest(info.arguments)} if info is not None else {}
    if outcome.verdict is Verdict.DECIDED and outcome.info is not None:
        thread = outcome.info.scope == SCOPE_THREAD
        await audit(Action.ALLOWANCE if thread else Action.APPROVAL,
                    f"{outcome.info.status} for the thread" if thread else outcome.info.status, **what)
    elif outcome.verdict is Verdict.NOT_ALLOWED:
        wanted = "allow for the thread" if scope == SCOPE_THREAD else "approve" if approve else "deny"
        await audit(Action.ALLOWANCE if scope == SCOPE_THREAD else Action.APPROVAL,
                    f"refused: may not {wanted}", **what)


async def _decide(agent: Agent, conversation_id: str, approval_id: str, approve: bool, user: str,
                  approvers: Sequence[str], admins: Sequence[str], platform_admin: AdminCheck,
                  admin_known_first: bool, scope: str, asked_out: list[ApprovalInfo]) -> Outcome:
    try:
        try:
            asked = await asyncio.wait_for(agent.get_approval(conversation_id, approval_id), LOOKUP_WAIT)
        except TimeoutError:
            asked = None  # the decision below meets the workflow's own check either way
        if asked is not None:
            asked_out.append(asked)
        admin = admin_known_first and await platform_admin(user)
        if asked is not None and asked.approvers is None:
            # Asked before approvals recorded their policy: check here, against the workflow's record.
            if not may_decide(user, asked.requested_by, approvers, admin or user in admins):
                return Outcome(Verdict.NOT_ALLOWED, requested_by=asked.requested_by)
        try:
            info = await agent.decide(conversation_id, approval_id, approve, by=user, admin=admin, scope=scope)
        except ApprovalNotAllowed:
            if admin_known_first or not await platform_admin(user):
                raise
            info = await agent.decide(conversation_id, approval_id, approve, by=user, admin=True, scope=scope)
    except ApprovalNotAllowed as exc:
        return Outcome(Verdict.NOT_ALLOWED, requested_by=exc.requested_by)
    except ConversationNotFound:
        return Outcome(Verdict.ENDED)
    except ApprovalAlreadyDecided as exc:
        return Outcome(Verdict.ALREADY_DECIDED, status=exc.status, decided_by=exc.decided_by)
    except ApprovalUnknown:
        return Outcome(Verdict.GONE)
    except ApprovalError as exc:
        return Outcome(Verdict.NOTHING_CHANGED, detail=str(exc))
    except DurabotError as exc:
        log.warning("decision on %s in %s failed: %s", approval_id, conversation_id, exc)
        return Outcome(Verdict.UNREACHABLE)
    return Outcome(Verdict.DECIDED, info=info)
