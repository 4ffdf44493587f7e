"""Names that cross process boundaries, defined once.

Clients, workers and platform adapters of different versions talk through these names (Temporal
workflow, update, signal, query and activity names, delivery kinds, ApplicationError types), so
they are part of the contract with every conversation already running: add, never rename.
Everyone imports them from here; nothing else spells them.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "WORKFLOW",
    "LLM_ACTIVITY",
    "TOOL_ACTIVITY",
    "RESTORE_ACTIVITY",
    "SUMMARY_ACTIVITY",
    "DELIVER_ACTIVITY",
    "Update",
    "Signal",
    "Query",
    "DeliveryKind",
    "ErrorType",
]

WORKFLOW = "DurabotConversation"

LLM_ACTIVITY = "durabot.llm_round"
TOOL_ACTIVITY = "durabot.run_tool"
RESTORE_ACTIVITY = "durabot.restore"
SUMMARY_ACTIVITY = "durabot.summarise_context"  # older turns into a summary, when the context fills up
DELIVER_ACTIVITY = "durabot.deliver"  # runs on a platform adapter's delivery task queue


class _Name(str, Enum):
    """A name that is its value wherever it is shown too: logs and messages read as they did when it
    was a plain string."""

    def __str__(self) -> str:
        return self.value


class Update(_Name):
    SUBMIT = "submit"
    SUBMIT_AND_WAIT = "submit_and_wait"
    SUBMIT_AND_FOLLOW = "submit_and_follow"  # submit, answer at the turn's first milestone (approval or end)
    WAIT_PROGRESS = "wait_progress"
    DECIDE = "decide"
    REVOKE = "revoke_allowance"  # end a tool's thread-wide allowance
    FEEDBACK = "feedback"  # a person rates an answer (up / down, optional comment)


class Signal(_Name):
    SUBMIT = "submit_signal"
    CANCEL = "cancel"
    DECIDE_CHILD = "decide_signal"  # a parent passes a decision down to its sub-agent
    CHILD_APPROVAL = "child_approval"  # a sub-agent raises an approval to its parent


class Query(_Name):
    STATUS = "status"
    TURN = "turn"
    APPROVAL = "approval"
    FEEDBACK = "feedback"  # the ratings the conversation holds


class DeliveryKind(_Name):
    """What a durable notice to a platform adapter is about. A str enum: it travels as its value."""

    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_DECIDED = "approval_decided"
    TURN_FINISHED = "turn_finished"
    TURN_CANCELLED = "turn_cancelled"
    TURN_FAILED = "turn_failed"

    @classmethod
    def _missing_(cls, value: object) -> "DeliveryKind | None":
        # A newer workflow may send a kind this adapter does not know yet: decode it (as a member
        # outside the list) so the adapter skips that notice instead of failing it for a day.
        if not isinstance(value, str):
            return None
        unknown = str.__new__(cls, value)
        unknown._name_, unknown._value_ = "UNKNOWN", value
        return unknown

    @property
    def known(self) -> bool:
        """False for a kind from a newer workflow (see ``_missing_``)."""
        return self._name_ in type(self).__members__

    @property
    def ends_turn(self) -> bool:
        return self in (DeliveryKind.TURN_FINISHED, DeliveryKind.TURN_CANCELLED, DeliveryKind.TURN_FAILED)


class ErrorType(_Name):
    """``ApplicationError.type`` values that cross the workflow / activity / client boundaries."""

    FINGERPRINT = "FingerprintMismatch"
    MODEL = "ModelError"
    ABORTED = "RunAborted"
    APPROVAL_NOT_ALLOWED = "ApprovalNotAllowed"
    APPROVAL_UNKNOWN = "ApprovalUnknown"
    APPROVAL_ALREADY_DECIDED = "ApprovalAlreadyDecided"
    SCOPE_NOT_OFFERED = "ApprovalScopeNotOffered"  # "always allow in this thread" on a tool that may not
    CONTINUING = "Continuing"
    MESSAGE_REJECTED = "MessageRejected"
    FEEDBACK_REJECTED = "FeedbackRejected"
    # The model refused the request as longer than its context window (not retried by Temporal; the
    # workflow retries once with a smaller budget).
    CONTEXT_TOO_LONG = "ContextLengthExceeded"
    # How a platform adapter's delivery attempt ended; see bots/core/delivery.py.
    DELIVERY_LATER = "DeliveryRetryLater"  # rate limit or outage: retried until the notice goes through
    DELIVERY_UNEXPECTED = "DeliveryUnexpected"  # retried a few times, then sent once as plain text
    DELIVERY_REFUSED = "DeliveryRefused"  # the platform refused for good (channel gone, no access)
    DELIVERY_FAILED = "DeliveryFailed"  # the plain-text fallback failed too: the notice is dropped
