"""How the conversation workflow runs its model and tool activities: timeouts and retries (Temporal
owns them), and what a failure that retrying did not fix tells the user. Pure, no I/O."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, ChildWorkflowError

from .contract import ErrorType
from .fingerprint import describe_mismatch
from .types import Timeouts


def activity_options(t: Timeouts, timeout: float) -> dict:
    """Options of an activity that may run ``timeout`` seconds."""
    return dict(
        start_to_close_timeout=timedelta(seconds=timeout),
        schedule_to_start_timeout=timedelta(seconds=t.schedule_to_start) if t.schedule_to_start else None,
        heartbeat_timeout=timedelta(seconds=t.heartbeat),
        retry_policy=RetryPolicy(
            initial_interval=timedelta(milliseconds=500), backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=30), maximum_attempts=8,
            non_retryable_error_types=[ErrorType.FINGERPRINT.value, ErrorType.ABORTED.value],
        ),
    )


def explain(err: ActivityError | ChildWorkflowError, manifest: dict[str, str]) -> tuple[str, str]:
    """The error text and kind of a failed turn; ``manifest``: the client's, for a configuration mismatch."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type == ErrorType.FINGERPRINT:
        worker_manifest = cause.details[0] if cause.details else {}
        return describe_mismatch(manifest, worker_manifest), ErrorType.FINGERPRINT.value
    if isinstance(cause, ApplicationError):
        return cause.message, cause.type or "ApplicationError"
    if isinstance(cause, CancelledError):
        return "the activity was cancelled", "Cancelled"
    return str(cause or err), type(cause or err).__name__
