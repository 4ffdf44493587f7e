"""Errors of agent_core. Two roots: one for misuse, one for failures at run time.

    DurabotError
    ├── UserError                 misconfiguration or misuse: the message says how to fix it
    │   └── FingerprintMismatch   client and worker run different configurations
    └── AgentRuntimeError         something failed while running
        ├── NoWorkerError         nothing polls the task queue (interactive mode fails fast)
        ├── TemporalUnavailable   the Temporal server cannot be reached
        ├── ConversationNotFound  no such conversation (or it has ended)
        ├── ApprovalError         an approval decision was refused (unknown, already decided, expired)
        │   └── ApprovalNotAllowed    the decider is not one the approval's policy allows
        ├── RunCancelled          the run was cancelled
        └── RunFailed             the run ended with an error
            └── RunAborted        a hook stopped the run; the message is the hook's reason

Failures that cross the workflow / activity boundary are ``ApplicationError``s whose ``type`` is one
of the names at the end of this module.
"""

from __future__ import annotations

from .contract import ErrorType


class DurabotError(Exception):
    """Root of every error this package raises on purpose."""


class UserError(DurabotError):
    """The caller or the configuration is wrong; the message says how to fix it."""


class FingerprintMismatch(UserError):
    pass


class AgentRuntimeError(DurabotError):
    pass


class NoWorkerError(AgentRuntimeError):
    pass


class TemporalUnavailable(AgentRuntimeError):
    pass


class ConversationNotFound(AgentRuntimeError):
    pass


class ApprovalError(AgentRuntimeError):
    pass


class ApprovalUnknown(ApprovalError):
    """The conversation's current run holds no such approval (it ended, or the id is stale)."""


class ApprovalAlreadyDecided(ApprovalError):
    """``status`` (approved, denied, expired, cancelled) and ``decided_by`` as the workflow recorded them."""

    def __init__(self, message: str, status: str | None = None, decided_by: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.decided_by = decided_by


class ApprovalNotAllowed(ApprovalError):
    """``requested_by`` is who asked, as the workflow recorded it (for a helpful refusal)."""

    def __init__(self, message: str, requested_by: str | None = None) -> None:
        super().__init__(message)
        self.requested_by = requested_by


class RunCancelled(AgentRuntimeError):
    pass


class RunFailed(AgentRuntimeError):
    pass


class RunAborted(RunFailed):
    pass


# ApplicationError type names used across the workflow / activity boundary (defined in contract.py).
FINGERPRINT_ERROR = ErrorType.FINGERPRINT.value
MODEL_ERROR = ErrorType.MODEL.value
ABORTED = ErrorType.ABORTED.value
APPROVAL_NOT_ALLOWED = ErrorType.APPROVAL_NOT_ALLOWED.value
DELIVERY_LATER = ErrorType.DELIVERY_LATER.value
DELIVERY_UNEXPECTED = ErrorType.DELIVERY_UNEXPECTED.value
DELIVERY_REFUSED = ErrorType.DELIVERY_REFUSED.value
DELIVERY_FAILED = ErrorType.DELIVERY_FAILED.value
CONTEXT_TOO_LONG = ErrorType.CONTEXT_TOO_LONG.value
