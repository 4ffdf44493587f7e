"""Approvals: their ids, and who may decide them. Pure and deterministic: the workflow uses both.

Ids are derived from what the approval is about, so they never repeat in a conversation. A counter
restarted at ``a1`` whenever a run began without the previous run's state, and a card's stale button
then decided a different tool call. An id hashed from the turn, the model round and the tool call id
names one call for good (the round too, because some servers number call ids per response). The ``a``
prefix stays, so ``durabot approve <conversation> <id>`` reads as before; 12 hex digits keep Discord's
100-character custom ids (which also carry the conversation) well within bounds.

Who may decide is the policy of the message that asked, recorded in the ``ApprovalInfo``: the workflow
checks a decision against that record, never against what a button or a caller claims.
"""

from __future__ import annotations

import hashlib

from .types import ApprovalInfo

APPROVAL_IDS_PATCH = "approval-ids-from-calls"  # runs started before it keep numbering a1, a2, ...
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
