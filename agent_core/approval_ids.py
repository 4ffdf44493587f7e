"""Approval ids: derived from what the approval is about, so they never repeat in a conversation.

A counter restarted at ``a1`` whenever a run began without the previous run's state, and a card's
stale button then decided a different tool call. An id hashed from the turn, the model round and the
tool call id names one call for good. The ``a`` prefix stays, so ``durabot approve <conversation> <id>``
reads as before; 12 hex digits keep Discord's 100-character custom ids (which also carry the
conversation) well within bounds. Pure and deterministic: the workflow computes these.
"""

from __future__ import annotations

import hashlib

APPROVAL_IDS_PATCH = "approval-ids-from-calls"  # runs started before it keep numbering a1, a2, ...
DIGITS = 12


def approval_id(*parts: str) -> str:
    """The id of the approval of one tool call (turn, round, call id) or of a sub-agent's approval
    (child workflow id, the child's approval id)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return "a" + digest[:DIGITS]
