"""Approve / Deny / Show all clicks: what goes to the workflow, and what the clicker is told.

Who may decide is the workflow's call: each approval records the policy of the message that asked
(requester, DURABOT_APPROVERS, DURABOT_ADMINS) and its validator refuses anyone else, whatever a
button says. The card itself is edited by the ``approval_decided`` delivery, so one writer owns it and
a click never races a timeout.
"""

from __future__ import annotations

import asyncio
import logging

from agent_core import Agent
from agent_core.approvals import SCOPE_ONCE, SCOPE_THREAD
from agent_core.errors import AgentRuntimeError
from agent_core.settings import Settings
from bots.core import policy
from bots.core.audit import Recorder
from bots.core.approval_click import LOOKUP_WAIT, Outcome, Verdict, decide_click

from .ids import ApprovalButton, parse_conversation_id
from .render import arguments_modal
from .web import SlackCallError, SlackWeb

log = logging.getLogger(__name__)


def may_decide(user: str, requested_by: str, settings: Settings) -> bool:
    """The approval policy with only DURABOT_ADMINS as admins: a workspace admin is asked of Slack
    only after the workflow refused the clicker (see ``decide``)."""
    return policy.may_decide(user, requested_by, settings.approvers, admin=user in settings.admins)


def refusal(requested_by: str | None, settings: Settings) -> str:
    who = []
    if requested_by and policy.REQUESTER in (settings.approvers or [policy.REQUESTER]):
        who.append(f"<@{requested_by}> (who asked)")
    listed = [a for a in settings.approvers if a not in (policy.REQUESTER, policy.ANYONE)]
    who.append("the configured approvers and admins" if listed or settings.admins else "workspace admins")
    return (f":no_entry: You cannot decide this request; only {' or '.join(who) or 'an admin'} can. "
            "Nothing changed.")


async def decide(agent: Agent, web: SlackWeb, button: ApprovalButton, user: str, user_team: str,
                 settings: Settings, audit: Recorder | None = None) -> str | None:
    """Send the decision; None when accepted, else the explanation to show the clicker.

    A workspace admin is known only here (users.info), so only after the workflow refused the clicker
    is it asked, and only for a clicker of the conversation's own workspace."""
    ref = parse_conversation_id(button.conversation_id)

    async def workspace_admin(clicker: str) -> bool:
        return ref is not None and ref.team == user_team and await web.is_workspace_admin(clicker)

    outcome = await decide_click(
        agent, button.conversation_id, button.approval_id, button.decision in ("approve", "allow"), user,
        approvers=settings.approvers, admins=settings.admins, platform_admin=workspace_admin,
        admin_known_first=False, scope=SCOPE_THREAD if button.decision == "allow" else SCOPE_ONCE,
        audit=audit)
    if outcome.verdict is Verdict.DECIDED:
        return None
    if outcome.verdict is Verdict.ENDED:
        return ":information_source: This run has ended; its approvals are closed. Nothing changed."
    if outcome.verdict is Verdict.NOT_ALLOWED:
        return refusal(outcome.requested_by, settings)
    if outcome.verdict is Verdict.ALREADY_DECIDED:
        return f":information_source: Nothing changed: {_already(outcome)}"
    if outcome.verdict is Verdict.GONE:
        return ":information_source: Nothing changed: this request is no longer open (its run has ended or restarted)."
    if outcome.verdict is Verdict.NOTHING_CHANGED:
        return f":information_source: Nothing changed: {outcome.detail}"
    return ":warning: The agent could not be reached; please click again in a minute."


async def show_arguments(agent: Agent, web: SlackWeb, button: ApprovalButton, trigger_id: str) -> str | None:
    """Open a modal with the call's whole arguments, read from the workflow (never from the card);
    None when it opened, else the explanation to show the clicker."""
    try:
        info = await asyncio.wait_for(agent.get_approval(button.conversation_id, button.approval_id), LOOKUP_WAIT)
    except (TimeoutError, AgentRuntimeError) as exc:
        log.warning("arguments of %s not read: %s", button.approval_id, exc)
        return ":warning: The agent could not be reached; please click again in a minute."
    if info is None:
        return ":information_source: This request is no longer open; its arguments are not kept."
    try:
        await web.call("views.open", trigger_id=trigger_id, view=arguments_modal(info))
    except SlackCallError as exc:
        log.warning("views.open for %s failed: %s", button.approval_id, exc.error)
        return ":warning: Slack did not open the arguments; please click again."
    return None


def foreign(button: ApprovalButton, team: str) -> bool:
    """Whether a click comes from another workspace than the conversation's: an app installed in many
    workspaces may see a card's ids pasted or replayed elsewhere, and such a click never acts."""
    ref = parse_conversation_id(button.conversation_id)
    return ref is None or not team or ref.team != team


FOREIGN = ":no_entry: This button belongs to a conversation of another workspace. Nothing changed."


def _already(outcome: Outcome) -> str:
    by = f" by <@{outcome.decided_by}>" if outcome.decided_by else ""
    return f"this request is already {outcome.status or 'decided'}{by}."
