"""What an ``Agent`` does to conversations that exist: decide and revoke approvals, rate answers,
cancel, read their state, list them. A base of ``Agent``: these calls need its client and ids only."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any, Iterable

from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from .contract import ErrorType, Query, Signal, Update
from .errors import (
    ApprovalAlreadyDecided,
    ApprovalError,
    ApprovalNotAllowed,
    ApprovalUnknown,
    UserError,
)
from .temporal import rpc_error
from .types import Allowance, ApprovalInfo, CancelRequest, ConversationStatus, Decision, Feedback, RevokeRequest

if TYPE_CHECKING:
    from temporalio.client import Client

    from .starts import RunStarts


class ConversationCalls:
    # Agent provides these, and handle(), workflow_id(), _ensure_worker(), _start_operation().
    name: str
    task_queue: str
    _starts: "RunStarts"
    temporal_address: Any
    client: "Client"

    async def decide(
        self, conversation_id: str, approval_id: str, approved: bool, by: str, reason: str | None = None,
        *, admin: bool = False, scope: str = "once",
    ) -> ApprovalInfo:
        """Approve or deny a pending approval. Raises ApprovalError if it is unknown or already decided,
        ApprovalNotAllowed if ``by`` may not decide it. ``admin``: the caller verified ``by`` as an admin
        of the conversation's workspace or guild (or is an operator), who may always decide. ``scope``
        "thread" approves this call and allows the tool, with any arguments, for the rest of the
        conversation (refused when the approval does not offer it: see ``ApprovalInfo.thread_scope``)."""
        for _ in range(100):
            try:
                return await self.handle(conversation_id).execute_update(
                    Update.DECIDE.value, Decision(approval_id, approved, by, reason, admin=admin, scope=scope),
                    id=f"decide-{approval_id}-{uuid.uuid4().hex[:8]}", result_type=ApprovalInfo,
                )
            except WorkflowUpdateFailedError as exc:
                cause = exc.cause
                if isinstance(cause, ApplicationError) and cause.type == ErrorType.CONTINUING:
                    await asyncio.sleep(0.05)  # the next run takes over in a moment
                    continue
                if isinstance(cause, ApplicationError) and cause.type == ErrorType.APPROVAL_NOT_ALLOWED:
                    raise ApprovalNotAllowed(cause.message, *cause.details[:1]) from None
                if isinstance(cause, ApplicationError) and cause.type == ErrorType.APPROVAL_ALREADY_DECIDED:
                    raise ApprovalAlreadyDecided(cause.message, *cause.details[:2]) from None
                if isinstance(cause, ApplicationError) and cause.type == ErrorType.APPROVAL_UNKNOWN:
                    raise ApprovalUnknown(cause.message) from None
                raise ApprovalError(cause.message if isinstance(cause, ApplicationError) else str(exc)) from None
            except RPCError as exc:
                raise rpc_error(exc, self.temporal_address, conversation_id, approval=True) from None
        raise ApprovalError(f"conversation {conversation_id!r} did not settle into its next run; try again")

    async def revoke(self, conversation_id: str, tool: str, by: str) -> Allowance | None:
        """End ``tool``'s thread-wide allowance in the conversation; its next call asks again. The
        allowance ended, or None when the tool had none (or the conversation has no running workflow)."""
        for _ in range(100):
            try:
                return await self.handle(conversation_id).execute_update(
                    Update.REVOKE.value, RevokeRequest(tool, by), result_type=Allowance | None,
                    id=f"revoke-{uuid.uuid4().hex[:12]}",
                )
            except WorkflowUpdateFailedError as exc:
                cause = exc.cause
                if isinstance(cause, ApplicationError) and cause.type == ErrorType.CONTINUING:
                    await asyncio.sleep(0.05)
                    continue
                raise ApprovalError(cause.message if isinstance(cause, ApplicationError) else str(exc)) from None
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return None
                raise rpc_error(exc, self.temporal_address, conversation_id) from None
        raise ApprovalError(f"conversation {conversation_id!r} did not settle into its next run; try again")

    async def rate(self, conversation_id: str, turn_id: str, by: str, rating: str,
                   comment: str | None = None) -> Feedback:
        """Record ``by``'s rating ("up" or "down", with an optional comment) of the answer of turn
        ``turn_id``; it replaces their earlier rating of the same answer. A conversation that already
        ended is started again to take it (its state, ratings included, is restored first)."""
        await self._ensure_worker()
        start = await self._start_operation(conversation_id)
        try:
            kept = await self.client.execute_update_with_start_workflow(
                Update.FEEDBACK.value, Feedback(turn_id, by, rating, comment), start_workflow_operation=start,
                id=f"rate-{uuid.uuid4().hex}", result_type=Feedback,
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            raise UserError(cause.message if isinstance(cause, ApplicationError) else str(exc)) from None
        except RPCError as exc:
            raise rpc_error(exc, self.temporal_address, conversation_id) from None
        self._starts.remember(conversation_id)
        return kept

    async def ratings(self, conversation_id: str) -> list[Feedback]:
        """The ratings of the conversation's answers (each person's latest per answer, oldest first);
        empty when its workflow is not running."""
        try:
            return await self.handle(conversation_id).query(Query.FEEDBACK.value, result_type=list[Feedback])
        except RPCError as exc:
            if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                return []
            raise rpc_error(exc, self.temporal_address, conversation_id) from None

    async def get_approval(self, conversation_id: str, approval_id: str) -> ApprovalInfo | None:
        """One approval with its whole arguments, as the conversation recorded it; None when this run
        does not know it (it ended, or it was decided long ago)."""
        try:
            return await self.handle(conversation_id).query(Query.APPROVAL.value, approval_id, result_type=ApprovalInfo)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise rpc_error(exc, self.temporal_address, conversation_id) from None

    async def cancel(
        self, conversation_id: str, by: str, reason: str | None = None, turn_id: str | None = None
    ) -> None:
        """Cancel the running turn (or a queued one); the conversation itself goes on."""
        try:
            await self.handle(conversation_id).signal(Signal.CANCEL.value, CancelRequest(by, reason, turn_id))
        except RPCError as exc:
            raise rpc_error(exc, self.temporal_address, conversation_id) from None

    async def has_run(self, conversation_id: str) -> bool:
        """Whether a conversation ever ran under this id: running, or ended (idle, or for good) and
        still in the namespace's retention. One describe; a message sent after it with
        ``existed=True`` needs no other look-up."""
        from temporalio.client import WorkflowExecutionStatus

        try:
            desc = await self.handle(conversation_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise rpc_error(exc, self.temporal_address, conversation_id) from None
        if desc.status == WorkflowExecutionStatus.RUNNING:
            self._starts.remember(conversation_id)
        elif desc.status == WorkflowExecutionStatus.COMPLETED:
            self._starts.ended(conversation_id, desc.run_id)
        return True

    async def status(self, conversation_id: str) -> ConversationStatus | None:
        """The conversation's state, or None if it has no running workflow."""
        from temporalio.client import WorkflowExecutionStatus

        handle = self.handle(conversation_id)
        try:
            desc = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise rpc_error(exc, self.temporal_address, conversation_id) from None
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return None
        return await self.query_status(conversation_id, handle)

    async def query_status(self, conversation_id: str, handle: WorkflowHandle | None = None) -> ConversationStatus | None:
        """The state of a conversation known to be running (listed), without describing it first;
        None when it ended meanwhile."""
        handle = handle or self.handle(conversation_id)
        try:
            return await handle.query(Query.STATUS.value, result_type=ConversationStatus)
        except RPCError as exc:
            if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                return None  # it ended between the listing and the query
            raise rpc_error(exc, self.temporal_address, conversation_id) from None

    async def list_conversations(
        self, prefix: str = "", limit: int = 50, *, prefixes: Iterable[str] | None = None,
        detail_timeout: float | None = None,
    ) -> list[ConversationStatus]:
        """Running conversations whose id starts with ``prefix`` (or with any of ``prefixes``), newest first.

        The Temporal server filters on the workflow id, so the cost follows the conversations that
        match, not the namespace. Each one's state is queried concurrently; with ``detail_timeout``
        (seconds) one that has not answered by then is listed with ``state == "unknown"``.
        """
        from .listing import list_running

        query = self._running_query(prefix, prefixes)
        if query is None:
            return []
        try:
            return await list_running(
                self.client, query, len(self.name) + 1,
                lambda wid, cid: self.query_status(cid, self.client.get_workflow_handle(wid)),
                limit, detail_timeout,
            )
        except RPCError as exc:
            raise rpc_error(exc, self.temporal_address) from None

    async def count_conversations(self, prefix: str = "", *, prefixes: Iterable[str] | None = None) -> int:
        """How many conversations whose id starts with ``prefix`` (or any of ``prefixes``) are running."""
        from .listing import count_running

        query = self._running_query(prefix, prefixes)
        if query is None:
            return 0
        try:
            return await count_running(self.client, query)
        except RPCError as exc:
            raise rpc_error(exc, self.temporal_address) from None

    def _running_query(self, prefix: str, prefixes: Iterable[str] | None) -> str | None:
        """The visibility query, or None when ``prefixes`` is empty (nothing may be listed)."""
        from .listing import running_query

        chosen = [prefix] if prefixes is None else list(prefixes)
        if not chosen:
            return None
        return running_query([self.workflow_id(p) for p in chosen], self.task_queue)
