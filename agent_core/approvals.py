"""Approvals: their ids, who may decide them, and the gate a conversation's tool calls wait at.

Ids are derived from what the approval is about, so they never repeat in a conversation. A counter
restarted at ``a1`` whenever a run began without the previous run's state, and a card's stale button
then decided a different tool call. An id hashed from the turn, the model round and the tool call id
names one call for good (the round too, because some servers number call ids per response). The ``a``
prefix stays, so ``durabot approve <conversation> <id>`` reads as before; 12 hex digits keep Discord's
100-character custom ids (which also carry the conversation) well within bounds.

Who may decide is the policy of the message that asked, recorded in the ``ApprovalInfo``: the workflow
checks a decision against that record, never against what a button or a caller claims.

``ApprovalGate`` is workflow code (deterministic, no I/O): asking, deciding, expiry, and the approvals
a sub-agent raises to its parent. What it needs of the conversation is the ``GateHost`` protocol.

Thread allowances and sub-agents. An allowance ("always allow in this thread") is state of the top
conversation only; a sub-agent never holds one. A sub-agent's approval goes up to its parent as it
always did, and the parent answers it from the thread's allowances *at that moment*: a tool allowed in
the thread is approved for the sub-agent at once (no card), a revoked one is asked again, and the
allowance given while a sub-agent's approval of the same tool waits covers it too. Asking the
parent each time, rather than handing the child a copy of the allowances at its start, keeps one
authority: a revoke in the parent reaches sub-agents already running without any message to them.
Admin-only tools (the sub-agent's, the agent's or the profile's) are never covered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from datetime import datetime, timedelta
from typing import Protocol

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from .contract import DeliveryKind, ErrorType, Signal
from .types import (
    Allowance,
    ApprovalInfo,
    ChildApproval,
    Decision,
    ParentLink,
    RevokeRequest,
    Timeouts,
    ToolCall,
    ToolSpec,
    TurnStatus,
    UserMessage,
)

APPROVAL_IDS_PATCH = "approval-ids-from-calls"  # runs started before it keep numbering a1, a2, ...
# A call of a tool allowed for the thread runs without asking: that skips the approval notice and
# wait, a change of the commands the workflow emits.
THREAD_ALLOWANCES_PATCH = "thread-allowances"
# A sub-agent's approval of a tool allowed in the thread is answered by the parent without a card (a
# decision signal instead of a notice and a wait): a change of the commands the parent emits.
SUBAGENT_ALLOWANCES_PATCH = "subagent-allowances"
SCOPE_ONCE, SCOPE_THREAD = "once", "thread"
DIGITS = 12


def approval_id(*parts: str) -> str:
    """The id of the approval of one tool call (turn, round, call id) or of a sub-agent's approval
    (child workflow id, the child's approval id)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return "a" + digest[:DIGITS]


def may_decide(info: ApprovalInfo, by: str, admin: bool = False) -> bool:
    """Whether ``by`` may decide ``info``; ``admin``: the caller verified ``by`` as an admin."""
    if info.approvers is None or admin or by in info.admins:
        return True  # no recorded policy: anyone, as for SDK callers that give none
    if "anyone" in info.approvers or by in info.approvers:
        return True
    return "requester" in info.approvers and by == info.requested_by


def who_may(info: ApprovalInfo) -> str:
    """The deciders ``info`` allows, for a refusal's message."""
    who = []
    if info.approvers and "requester" in info.approvers:
        who.append(f"the requester {info.requested_by!r}")
    listed = [a for a in info.approvers or [] if a not in ("requester", "anyone")]
    if listed:
        who.append("the approvers " + ", ".join(repr(a) for a in listed))
    who.append("an admin")
    return ", ".join(who[:-1]) + (" or " if len(who) > 1 else "") + who[-1]


_DECIDED_KEPT = 50  # decided approvals this run still answers queries about


class Checkpoint(Exception):
    """Raised inside a turn when only approval waits remain and the run should continue as new."""


class GateHost(Protocol):
    """What the gate needs of the conversation workflow."""

    def current_turn(self) -> tuple[UserMessage | None, TurnStatus | None]:
        """The message and status of the running turn (None, None between turns)."""

    def notify(self, kind: DeliveryKind, msg: UserMessage, st: TurnStatus,
               approval: ApprovalInfo | None = None) -> None:
        """Queue a durable notice for the turn's platform adapter."""

    def tool_spec(self, name: str) -> ToolSpec | None:
        """What the agent's configuration says of tool ``name``."""

    def turn_timeouts(self, msg: UserMessage) -> Timeouts:
        """The timeouts a turn of ``msg`` runs with (its profile's mode, or the agent's)."""

    def checkpoint_if_history_large(self) -> None:
        """Ask for a pause (continue-as-new) once only approval waits remain, if the history is large."""

    def pause_now(self) -> bool:
        """Whether a wanted pause can happen now (no tool is running)."""


class ApprovalGate:
    """The approvals of one run: ``approvals`` by id, and those proxied for sub-agents."""

    def __init__(self, host: GateHost, parent: ParentLink | None) -> None:
        self.host = host
        self.parent = parent  # set when this run is a sub-agent: its approvals are raised to the parent
        # How long an approval waits for a decision: the turn's (host.turn_timeouts), by its profile's mode.
        self.count = 0  # approvals asked in the conversation, for ids of runs before APPROVAL_IDS_PATCH
        self.approvals: dict[str, ApprovalInfo] = {}
        self.child_proxies: dict[tuple[str, str], ApprovalInfo] = {}  # (child workflow, its id) -> ours
        self.proxy_targets: dict[str, tuple[str, str]] = {}  # our approval id -> (child workflow, its id)
        self.allowances: dict[str, Allowance] = {}  # tool -> its thread-wide allowance

    # ------------------------------------------------------------ thread-wide allowances
    def allowed(self, tool: str) -> bool:
        """Whether ``tool`` is allowed for the thread, so its call skips the approval."""
        # patched() only where an allowance exists: histories without one never see the marker.
        return tool in self.allowances and workflow.patched(THREAD_ALLOWANCES_PATCH)

    def revoke(self, req: RevokeRequest) -> Allowance | None:
        """End ``req.tool``'s allowance; its next call asks again. None when it had none."""
        return self.allowances.pop(req.tool, None)

    # ------------------------------------------------------------ asking
    async def ask(self, msg: UserMessage, st: TurnStatus, call: ToolCall, rnd: int) -> ApprovalInfo:
        """Ask for a decision on ``call`` of round ``rnd`` and wait for it (or for expiry)."""
        # Approvals of older versions carry no round: matched by call id alone, as they were.
        info = next((a for a in st.approvals if a.call_id == call.id and a.round in (None, rnd)), None)
        timeout = self.host.turn_timeouts(msg).approval  # seconds it waits for a decision
        if info is None:
            self.count += 1
            deadline = workflow.now() + timedelta(seconds=timeout)
            unique = workflow.patched(APPROVAL_IDS_PATCH)
            info = ApprovalInfo(
                id=approval_id(msg.id, str(rnd), call.id) if unique else f"a{self.count}",
                turn_id=msg.id, tool=call.name, arguments=call.arguments,
                requested_by=msg.user, call_id=call.id, deadline=deadline.isoformat(),
                approvers=None if msg.approvers is None else list(msg.approvers), admins=list(msg.admins),
                round=rnd if unique else None, thread_scope=self._thread_scope(call.name),
                admin_only=self._admin_only(call.name),
            )
            self.approvals[info.id] = info
            st.approvals.append(info)
            st.state, st.step = "awaiting_approval", f"waiting for approval of {call.name}"
            st.bump(milestone=True)
            self.host.notify(DeliveryKind.APPROVAL_REQUESTED, msg, st, approval=info)
            workflow.metric_meter().create_counter("durabot_approvals_requested", "Approvals asked").add(1)
            await self._raise_to_parent(info)
        else:  # resumed after continue-as-new: the card is already out, only wait again
            self.approvals[info.id] = info
        if info.status == "pending":
            self.host.checkpoint_if_history_large()
        remaining = (_parse_time(info.deadline) - workflow.now()).total_seconds() if info.deadline else None
        try:
            await workflow.wait_condition(
                lambda: info.status != "pending" or self.host.pause_now(),
                timeout=max(remaining, 0.001) if remaining is not None else timeout,
            )
        except asyncio.TimeoutError:
            info.status = "expired"
        finally:
            self._trim()
        if info.status == "pending":
            raise Checkpoint()
        if not any(a.status == "pending" for a in st.approvals):
            st.state = "running"
        st.bump(milestone=True)
        self.host.notify(DeliveryKind.APPROVAL_DECIDED, msg, st, approval=info)
        meter = workflow.metric_meter()
        meter.create_counter("durabot_approvals_decided", "Approvals ended").add(1, {"outcome": info.status})
        if info.deadline:
            asked = _parse_time(info.deadline) - timedelta(seconds=timeout)
            meter.create_histogram_float("durabot_approval_wait_seconds", "Approval wait", "s").record(
                max(0.0, (workflow.now() - asked).total_seconds()))
        await self._raise_to_parent(info)
        return info

    def _thread_scope(self, tool: str) -> bool:
        # A sub-agent's approvals are decided by its parent, which answers them from its allowances.
        return self.parent is None and not self._admin_only(tool)

    def admin_only(self, tool: str) -> bool:
        """Whether ``tool``'s approvals are for admins only in the current turn (never thread-allowed)."""
        return self._admin_only(tool)

    def _admin_only(self, tool: str) -> bool:
        spec = self.host.tool_spec(tool)
        msg, _ = self.host.current_turn()
        if msg is not None and msg.profile is not None and tool in msg.profile.admin_only:
            return True
        return spec is not None and spec.admin_only

    def _covers(self, info: ApprovalInfo) -> Allowance | None:
        """The thread allowance that answers a sub-agent's approval ``info``, if one does."""
        allowance = self.allowances.get(info.tool)
        if allowance is None or info.admin_only or self._admin_only(info.tool):
            return None
        # patched() only where an allowance covers a sub-agent's call: other histories never see it.
        return allowance if workflow.patched(SUBAGENT_ALLOWANCES_PATCH) else None

    def _trim(self) -> None:
        decided = [k for k, a in self.approvals.items() if a.status != "pending"]
        for key in decided[: max(0, len(decided) - _DECIDED_KEPT)]:
            del self.approvals[key]

    # ------------------------------------------------------------ deciding
    def validate(self, d: Decision, continuing: bool) -> None:
        """Refuse a decision the gate cannot take (the update's validator: nothing is recorded)."""
        if continuing:
            raise ApplicationError("the conversation is moving to a new run; try again",
                                   type=ErrorType.CONTINUING.value)
        info = self.approvals.get(d.approval_id)
        if info is None:
            raise ApplicationError(f"no approval {d.approval_id!r} in this conversation",
                                   type=ErrorType.APPROVAL_UNKNOWN.value)
        if info.status != "pending":
            who = f" by {info.decided_by}" if info.decided_by else ""
            raise ApplicationError(
                f"approval {d.approval_id!r} is already {info.status}{who}", info.status, info.decided_by,
                type=ErrorType.APPROVAL_ALREADY_DECIDED.value,
            )
        if d.scope == SCOPE_THREAD and not info.thread_scope:
            raise ApplicationError(
                f"{info.tool!r} cannot be allowed for the whole thread (admin-only, or asked by a sub-agent); "
                "approve it once instead", type=ErrorType.SCOPE_NOT_OFFERED.value)
        if not may_decide(info, d.by, d.admin):
            # The policy was recorded when the approval was asked: what a button or caller claims
            # about the requester or the approvers plays no part.
            raise ApplicationError(
                f"{d.by!r} may not decide approval {d.approval_id!r}: only {who_may(info)} can",
                info.requested_by, type=ErrorType.APPROVAL_NOT_ALLOWED.value,
            )

    async def decide(self, d: Decision) -> ApprovalInfo:
        """A validated decision (see ``validate``)."""
        info = self.approvals[d.approval_id]
        await self._apply(info, d)
        return info

    async def decide_from_parent(self, d: Decision, continuing: bool) -> None:
        """A parent passing down a decision on an approval this sub-agent raised to it."""
        info = self.approvals.get(d.approval_id)
        if info is not None and info.status == "pending" and not continuing:
            await self._apply(info, d)

    async def _apply(self, info: ApprovalInfo, d: Decision) -> None:
        info.status = "approved" if d.approved else "denied"
        info.decided_by = d.by
        info.reason = d.reason
        info.scope = d.scope if d.approved and info.thread_scope else SCOPE_ONCE
        if d.approved and info.scope == SCOPE_THREAD:
            self.allowances[info.tool] = Allowance(info.tool, d.by, workflow.now().isoformat(), info.id)
            # The other calls of that tool waiting now are covered by the same allowance.
            for other in list(self.approvals.values()):
                if other.tool == info.tool and other.status == "pending" and other.thread_scope:
                    other.status, other.decided_by, other.scope = "approved", d.by, SCOPE_THREAD
                elif (other.tool == info.tool and other.status == "pending" and other.id in self.proxy_targets
                      and self._covers(other) is not None):  # a sub-agent's, waiting here
                    await self._apply(other, Decision(other.id, True, d.by, _allowed_by(d.by), admin=d.admin))
        target = self.proxy_targets.get(info.id)
        if target is not None:  # the approval belongs to a sub-agent: it decides there
            self._proxy_resolved(info)
            await workflow.get_external_workflow_handle(target[0]).signal(
                Signal.DECIDE_CHILD.value, Decision(target[1], d.approved, d.by, d.reason, admin=d.admin))

    # ------------------------------------------------------------ sub-agents' approvals
    async def from_child(self, ca: ChildApproval) -> None:
        """A sub-agent asks (or reports the end of) an approval: show it as ours, under an id of ours."""
        key = (ca.child_workflow_id, ca.approval.id)
        proxy = self.child_proxies.get(key)
        msg, st = self.host.current_turn()
        if proxy is None:
            if ca.approval.status != "pending" or st is None or msg is None:
                return
            allowance = self._covers(ca.approval)
            if allowance is not None:  # allowed in this thread: answered at once, no card
                await workflow.get_external_workflow_handle(ca.child_workflow_id).signal(
                    Signal.DECIDE_CHILD.value,
                    Decision(ca.approval.id, True, allowance.by, _allowed_by(allowance.by), scope=SCOPE_THREAD))
                return
            self.count += 1
            unique = workflow.patched(APPROVAL_IDS_PATCH)
            # Decided here, so checked against this conversation's policy, not the child's.
            proxy = dataclasses.replace(
                ca.approval, turn_id=msg.id, call_id=None,
                id=approval_id(ca.child_workflow_id, ca.approval.id) if unique else f"a{self.count}",
                approvers=None if msg.approvers is None else list(msg.approvers), admins=list(msg.admins),
            )
            self.child_proxies[key] = proxy
            self.proxy_targets[proxy.id] = key
            self.approvals[proxy.id] = proxy
            st.approvals.append(proxy)
            st.state, st.step = "awaiting_approval", f"waiting for approval of {proxy.tool}"
            st.bump(milestone=True)
            self.host.notify(DeliveryKind.APPROVAL_REQUESTED, msg, st, approval=proxy)
            await self._raise_to_parent(proxy)
        elif proxy.status == "pending" and ca.approval.status != "pending":
            proxy.status, proxy.decided_by, proxy.reason = (
                ca.approval.status, ca.approval.decided_by, ca.approval.reason)
            self._proxy_resolved(proxy)

    def _proxy_resolved(self, proxy: ApprovalInfo) -> None:
        msg, st = self.host.current_turn()
        if st is None or msg is None or proxy not in st.approvals:
            return
        if not any(a.status == "pending" for a in st.approvals):
            st.state = "running"
        st.bump(milestone=True)
        self.host.notify(DeliveryKind.APPROVAL_DECIDED, msg, st, approval=proxy)
        if self.parent is not None:
            asyncio.create_task(self._raise_to_parent(proxy))

    async def _raise_to_parent(self, info: ApprovalInfo) -> None:
        if self.parent is not None:
            await workflow.get_external_workflow_handle(self.parent.workflow_id).signal(
                Signal.CHILD_APPROVAL.value, ChildApproval(workflow.info().workflow_id, info))


def _allowed_by(by: str) -> str:
    return f"allowed in this thread by {by}"


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)
