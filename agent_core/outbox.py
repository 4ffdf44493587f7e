"""Durable notices of a conversation for platform adapters, delivered in order by an activity on the
adapter's task queue. Workflow code: deterministic, no I/O."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from .contract import DELIVER_ACTIVITY, DeliveryKind, ErrorType
from .types import ApprovalInfo, Delivery, TurnStatus, UserMessage

# Delivery activity options. 20 s to close: a delivery cut short by an adapter crash is retried soon.
# Retries go on for a day (an adapter or a platform that is down still gets its notices), except for
# the failures the adapter marks as final: a refusal for good, or a notice not even plain text could show.
_DELIVERY_OPTIONS = dict(
    start_to_close_timeout=timedelta(seconds=20),
    schedule_to_close_timeout=timedelta(days=1),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=30),
        non_retryable_error_types=[ErrorType.DELIVERY_REFUSED.value, ErrorType.DELIVERY_FAILED.value],
    ),
)


class Outbox:
    def __init__(self, conversation_id: str) -> None:
        self.conv = conversation_id
        self.items: list[tuple[str, Delivery]] = []
        self.delivering = False

    @property
    def empty(self) -> bool:
        """Nothing queued and nothing on its way: the run may end or continue as new."""
        return not self.items and not self.delivering

    def notify(self, kind: DeliveryKind, msg: UserMessage, st: TurnStatus, approval: ApprovalInfo | None = None) -> None:
        if msg.deliver_to is None:
            return
        info = workflow.info()
        self.items.append((msg.deliver_to.task_queue, Delivery(
            kind=kind, conversation_id=self.conv, turn_id=msg.id, meta=dict(msg.deliver_to.meta),
            text=st.text if kind is DeliveryKind.TURN_FINISHED else (
                st.error if kind is DeliveryKind.TURN_FAILED else None),
            approval=approval, tool_calls=list(st.tool_calls), workflow_id=info.workflow_id, run_id=info.run_id,
            by=st.cancelled_by if kind is DeliveryKind.TURN_CANCELLED else None,
            files=list(st.files) if kind is DeliveryKind.TURN_FINISHED else [],
        )))
        if not self.delivering:
            self.delivering = True
            asyncio.create_task(self._deliver_all())

    async def _deliver_all(self) -> None:
        # One at a time, in order: a decision never overtakes its card, nor an answer its approvals.
        # An item never blocks the ones behind it for long: the adapter's activity retries outages
        # until they pass and fails for good (non-retryable) on anything retrying cannot fix.
        try:
            while self.items:
                task_queue, item = self.items[0]
                try:
                    await workflow.execute_activity(
                        DELIVER_ACTIVITY, item, task_queue=task_queue, **_DELIVERY_OPTIONS)
                except ActivityError as err:
                    cause = err.cause
                    why = cause.type if isinstance(cause, ApplicationError) else type(cause or err).__name__
                    workflow.logger.warning(
                        "delivery %s of conversation %s turn %s dropped (%s): %s", item.kind.value, self.conv,
                        item.turn_id, why, cause.message if isinstance(cause, ApplicationError) else cause)
                self.items.pop(0)
        finally:
            self.delivering = False
