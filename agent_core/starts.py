"""The input a conversation's new run gets when a message starts one, and the conversations this
client saw running lately (a message to one of those needs no look-up first)."""

from __future__ import annotations

import time

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from .temporal import rpc_error
from .types import AgentSpec, ConversationInput

_KEPT = 10_000


class RunStarts:
    def __init__(self) -> None:
        self._running: dict[str, float] = {}  # conversation id -> when this client saw it running
        self._ended: dict[str, str] = {}  # conversation id -> the run id of its last run, seen ended

    def ended(self, conversation_id: str, run_id: str) -> None:
        """A look-up found the conversation's last run ended: its next start restores from that run."""
        self._ended[conversation_id] = run_id
        if len(self._ended) > _KEPT:
            for key in list(self._ended)[:1000]:
                del self._ended[key]

    def remember(self, conversation_id: str) -> None:
        self._running[conversation_id] = time.monotonic()
        if len(self._running) > _KEPT:
            for key in list(self._running)[:1000]:
                del self._running[key]

    async def input(self, handle: WorkflowHandle, conversation_id: str, spec: AgentSpec,
                    address: str, existed: bool | None = None) -> ConversationInput:
        """One cheap describe tells whether an earlier run left context, so a new conversation costs
        no visibility query. A run ends after ``spec.timeouts.idle`` seconds without a message.

        ``existed``: what the caller already knows, so no describe is needed. False: no conversation
        ever ran under this id (a thread that was just opened), nothing to restore. True: one ran
        here (it may have ended since): a run that starts looks up the previous run's context
        itself, so the look-up costs only when a run really starts."""
        inp = ConversationInput(conversation_id=conversation_id, spec=spec)
        if existed is False:
            inp.restored = True
            return inp
        if existed:
            inp.previous_run_id = self._ended.pop(conversation_id, None)
            return inp
        seen = self._running.get(conversation_id)
        if seen is not None and time.monotonic() - seen < spec.timeouts.idle / 2:
            return inp  # it was running a moment ago; if it ended meanwhile, the run looks itself up
        try:
            desc = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                inp.restored = True  # never ran: nothing to restore
                return inp
            raise rpc_error(exc, address, conversation_id) from None
        if desc.status == WorkflowExecutionStatus.COMPLETED:
            inp.previous_run_id = desc.run_id
        return inp
