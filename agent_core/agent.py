"""The ``Agent``: the client side of a durable agent, with an embedded worker by default."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, AsyncIterator, Iterable

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from . import limits
from .contract import WORKFLOW, ErrorType, Query, Signal, Update
from .errors import (
    ApprovalError,
    ApprovalNotAllowed,
    NoWorkerError,
    UserError,
)
from .events import EventBus, InMemoryEventBus, stream_key
from .fingerprint import build_manifest, fingerprint_of
from .hooks import Hooks
from .model import ChatModel, DemoModel
from .store import InMemoryTranscriptStore, TranscriptStore
from .handle import RunHandle, RunResult
from .temporal import TemporalConfig, rpc_error
from .tools import Tool
from .types import (
    AgentEvent,
    AgentMode,
    AgentSpec,
    ApprovalInfo,
    ApprovalPolicy,
    CancelRequest,
    Carry,
    ChatMessage,
    ConversationInput,
    ConversationStatus,
    Decision,
    DeliveryTarget,
    Progress,
    Timeouts,
    ToolSpec,
    TurnStatus,
    UserMessage,
    timeouts_for,
    workflow_id_for,
)

log = logging.getLogger(__name__)

MAX_MESSAGE = 100_000  # characters of one user message


class Agent:
    def __init__(
        self,
        name: str,
        model: ChatModel | None = None,
        system_prompt: str = "",
        tools: Iterable[Tool] = (),
        *,
        temporal: TemporalConfig | None = None,
        temporal_client: tuple[Client, str] | None = None,
        local_worker: bool = True,
        mode: AgentMode = AgentMode.INTERACTIVE,
        approval: ApprovalPolicy | str = ApprovalPolicy.MARKED,
        max_iterations: int = 10,
        context_messages: int = 100,
        context_chars: int = 100_000,
        timeouts: Timeouts | None = None,
        event_bus: EventBus | None = None,
        store: TranscriptStore | None = None,
        fingerprint_check: bool = True,
        max_history_events: int = 10_000,
        hooks: Iterable[Hooks] = (),
        mcp_servers: Iterable[Any] = (),
        subagents: Iterable["Agent"] = (),
        description: str = "",
        max_depth: int = 2,
    ) -> None:
        if temporal is not None and temporal_client is not None:
            raise UserError(
                "pass either temporal=TemporalConfig(...) (the agent connects and owns the client) or "
                "temporal_client=(client, task_queue) (you own the client), not both"
            )
        if temporal_client is not None and (
            not isinstance(temporal_client, tuple) or len(temporal_client) != 2 or not temporal_client[1]
        ):
            raise UserError("temporal_client must be a (client, task_queue) tuple")
        if not name or "/" in name:
            raise UserError(f"agent name {name!r} must be non-empty and contain no '/'")
        if max_iterations < 1:
            raise UserError("max_iterations must be at least 1")
        self.name = name
        self.model: ChatModel = model or DemoModel()
        self.system_prompt = system_prompt
        self.tools = list(tools)
        names = [t.name for t in self.tools]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise UserError(f"two tools share the name(s) {', '.join(map(repr, duplicates))}")
        for t in self.tools:
            if not isinstance(t, Tool):
                raise UserError(f"{t!r} is not a tool; decorate it with @tool")
        self.mode = AgentMode(mode)
        try:
            self.approval = ApprovalPolicy(approval)
        except ValueError:
            raise UserError(f"approval policy {approval!r} is not one of marked, all, none") from None
        self.max_iterations = max_iterations
        self.context_messages = context_messages
        self.context_chars = context_chars
        self.timeouts = timeouts or timeouts_for(self.mode)
        self.max_history_events = max_history_events
        self.fingerprint_check = fingerprint_check
        self.hooks = list(hooks)
        self.description = description
        self.max_depth = max_depth
        self.subagents = list(subagents)
        for sub in self.subagents:
            if not isinstance(sub, Agent):
                raise UserError(f"sub-agent {sub!r} is not an Agent")
            self.tools.append(_delegation_tool(sub))
        self.mcp_servers = list(mcp_servers)  # their tools are listed at start(), never in workflow code
        self._mcp_loaded = not self.mcp_servers
        self.temporal_config = temporal if temporal is not None else (None if temporal_client else TemporalConfig())
        self._client: Client | None = temporal_client[0] if temporal_client else None
        self.task_queue = temporal_client[1] if temporal_client else self.temporal_config.task_queue  # type: ignore[union-attr]
        self.local_worker = local_worker
        self._default_bus = event_bus is None
        self.event_bus: EventBus = event_bus or InMemoryEventBus()
        self.store: TranscriptStore = store or InMemoryTranscriptStore()
        self._compute_fingerprint()
        self._worker: Any = None
        self._worker_checked_at = 0.0
        self._running: dict[str, float] = {}  # conversations this client saw running, and when

    def _compute_fingerprint(self) -> None:
        self.manifest = build_manifest(
            name=self.name, system_prompt=self.system_prompt, model_identity=self.model.identity,
            tools=self.tools, approval=self.approval.value, mode=self.mode.value,
            max_iterations=self.max_iterations, context_messages=self.context_messages,
            context_chars=self.context_chars, extra={"hooks": ",".join(h.name for h in self.hooks)} if self.hooks else None,
        )
        if self.subagents:
            self.manifest["subagents"] = ",".join(f"{s.name}:{s.fingerprint}" for s in self.subagents)
        self.fingerprint = fingerprint_of(self.manifest)

    async def _load_mcp_tools(self) -> None:
        if self._mcp_loaded:
            return
        from .mcp import load_mcp_tools

        self.tools.extend(await load_mcp_tools(self.mcp_servers))
        names = [t.name for t in self.tools]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise UserError(f"MCP tools clash with local tools: {', '.join(map(repr, clashes))}; set a prefix")
        self._mcp_loaded = True
        self._compute_fingerprint()

    # ------------------------------------------------------------------ lifecycle
    @property
    def temporal_address(self) -> str:
        return self.temporal_config.address if self.temporal_config else "the configured server"

    @property
    def client(self) -> Client:
        if self._client is None:
            raise UserError("the agent is not started: use 'async with agent:' or 'await agent.start()'")
        return self._client

    async def start(self) -> "Agent":
        await self._load_mcp_tools()
        if self._client is None:
            self._client = await self.temporal_config.connect()  # type: ignore[union-attr]
        for sub in self.subagents:  # they share our connection; each serves its own task queue
            if sub._client is None:
                sub._client = self._client
            if sub._default_bus:  # in one process, their live events must reach our subscribers
                sub.event_bus = self.event_bus
            sub.local_worker = sub.local_worker and self.local_worker
            await sub.start()
        if self.subagents:
            self._compute_fingerprint()  # their fingerprints may have changed as they loaded MCP tools
        if self.local_worker and self._worker is None:
            from .worker import AgentWorker

            self._worker = AgentWorker(self)
            await self._worker.start()
        return self

    async def close(self) -> None:
        for sub in self.subagents:
            await sub.close()
        if self._worker is not None:
            await self._worker.shutdown()
            self._worker = None
        if self.mcp_servers and self._mcp_loaded:
            from .mcp import close_mcp_connections

            await close_mcp_connections()
        # A client passed in by the caller is theirs to close; ours needs no explicit close.

    async def __aenter__(self) -> "Agent":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def spec(self, depth: int = 0, max_depth: int | None = None) -> AgentSpec:
        max_depth = self.max_depth if max_depth is None else max_depth
        delegate = depth < max_depth
        return AgentSpec(
            name=self.name, mode=self.mode, approval=self.approval,
            tools=[ToolSpec(name=t.name, requires_approval=t.requires_approval,
                            subagent=getattr(t, "subagent", None)) for t in self.tools],
            task_queue=self.task_queue, depth=depth,
            subagents=[s.spec(depth + 1, max_depth) for s in self.subagents] if delegate else [],
            max_iterations=self.max_iterations, timeouts=self.timeouts, context_messages=self.context_messages,
            max_history_events=self.max_history_events, context_chars=self.context_chars,
            fingerprint=self.fingerprint if self.fingerprint_check else None,
            manifest=self.manifest if self.fingerprint_check else {},
        )

    def workflow_id(self, conversation_id: str) -> str:
        return workflow_id_for(self.name, conversation_id)

    def _handle(self, conversation_id: str) -> WorkflowHandle:
        return self.client.get_workflow_handle(self.workflow_id(conversation_id))

    # ------------------------------------------------------------------ runs
    async def run(self, text: str, conversation_id: str, **kwargs: Any) -> RunResult:
        """Send a message and wait for the answer. Raises RunCancelled / RunFailed / FingerprintMismatch."""
        handle = await self.run_async(text, conversation_id, _wait=True, **kwargs)
        return await handle.result(timeout=self.timeouts.run)

    async def stream(self, text: str, conversation_id: str, **kwargs: Any) -> AsyncIterator[AgentEvent]:
        """Send a message and yield its events: tokens, tools, approvals, and a last finished/cancelled/error."""
        handle = await self.run_async(text, conversation_id, **kwargs)
        async for event in handle.events():
            yield event

    async def run_async(
        self,
        text: str,
        conversation_id: str,
        *,
        message_id: str | None = None,
        user: str = "user",
        user_name: str | None = None,
        context: list[ChatMessage] | None = None,
        deliver_to: DeliveryTarget | None = None,
        approvers: list[str] | None = None,
        admins: list[str] | None = None,
        _wait: bool = False,
    ) -> "RunHandle":
        """Send a message (queued if a turn is running) and return a handle to its run at once.

        ``approvers`` ("requester", "anyone" and/or user ids) and ``admins`` say who may decide the
        run's approvals; the workflow records them with each approval. Without them anyone may."""
        if len(text) > MAX_MESSAGE:  # Temporal refuses payloads past 2 MB; say so instead of failing
            text = text[:MAX_MESSAGE] + f"\n[message truncated: {len(text)} characters in all]"
        if message_id is not None and len(message_id) > limits.NAME_CHARS:
            raise UserError(f"message_id is {len(message_id)} characters long; use at most {limits.NAME_CHARS}")
        msg = limits.bound_user_message(UserMessage(  # by encoded bytes: non-ASCII takes 6 to 12 each
            id=message_id or uuid.uuid4().hex, text=text, user=user, user_name=user_name,
            context=list(context or []), deliver_to=deliver_to,
            approvers=None if approvers is None else list(approvers), admins=list(admins or []),
        ))
        await self._ensure_worker()
        start = WithStartWorkflowOperation(
            WORKFLOW,
            await self._start_input(conversation_id),
            id=self.workflow_id(conversation_id), task_queue=self.task_queue, result_type=Carry,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        update_id = f"msg-{msg.id}-{uuid.uuid4().hex[:8]}"  # the workflow itself dedups by message id
        accept_within = None if self.mode is AgentMode.AUTONOMOUS else max(30.0, self.timeouts.llm / 4)
        try:
            if _wait:  # one update that returns when the turn ends: no separate long poll
                update = await asyncio.wait_for(
                    self.client.start_update_with_start_workflow(
                        Update.SUBMIT_AND_WAIT.value, msg, start_workflow_operation=start, id=update_id,
                        wait_for_stage=WorkflowUpdateStage.ACCEPTED, result_type=Progress,
                    ),
                    accept_within,
                )
                self._remember_running(conversation_id)
                return RunHandle(self, conversation_id, msg.id, None, waiting=update)
            status = await asyncio.wait_for(
                self.client.execute_update_with_start_workflow(
                    Update.SUBMIT.value, msg, start_workflow_operation=start, id=update_id, result_type=TurnStatus,
                ),
                accept_within,
            )
        except asyncio.TimeoutError:
            raise NoWorkerError(
                f"no worker accepted the message on task queue {self.task_queue!r} in time; "
                "start one with 'durabot worker' (same TEMPORAL_ADDRESS and DURABOT_TASK_QUEUE)"
            ) from None
        except RPCError as exc:
            raise rpc_error(exc, self.temporal_address) from None
        self._remember_running(conversation_id)
        return RunHandle(self, conversation_id, msg.id, status)

    def _remember_running(self, conversation_id: str) -> None:
        self._running[conversation_id] = time.monotonic()
        if len(self._running) > 10_000:
            for key in list(self._running)[:1000]:
                del self._running[key]

    async def _start_input(self, conversation_id: str) -> ConversationInput:
        """The input a new run gets if the message starts one. One cheap describe tells whether an
        earlier run left context, so a new conversation costs no visibility query."""
        from temporalio.client import WorkflowExecutionStatus

        inp = ConversationInput(conversation_id=conversation_id, spec=self.spec())
        seen = self._running.get(conversation_id)
        if seen is not None and time.monotonic() - seen < self.timeouts.idle / 2:
            return inp  # it was running a moment ago; if it ended meanwhile, the run looks itself up
        try:
            desc = await self._handle(conversation_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                inp.restored = True  # never ran: nothing to restore
                return inp
            raise rpc_error(exc, self.temporal_address, conversation_id) from None
        if desc.status == WorkflowExecutionStatus.COMPLETED:
            inp.previous_run_id = desc.run_id
        return inp

    def get_run(self, conversation_id: str, turn_id: str) -> "RunHandle":
        return RunHandle(self, conversation_id, turn_id, None)

    async def _ensure_worker(self) -> None:
        """Interactive mode fails fast when nothing polls the task queue."""
        if self.mode is AgentMode.AUTONOMOUS or (self.local_worker and self._worker is not None):
            return
        now = time.monotonic()
        if now - self._worker_checked_at < 10:
            return
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        request = DescribeTaskQueueRequest(
            namespace=self.client.namespace, task_queue=TaskQueue(name=self.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        for attempt in range(20):  # a worker that is just starting gets two seconds to show up
            try:
                resp = await self.client.workflow_service.describe_task_queue(request, timeout=_td(5))
            except RPCError as exc:
                raise rpc_error(exc, self.temporal_address) from None
            if resp.pollers:
                break
            await asyncio.sleep(0.1)
        else:
            raise NoWorkerError(
                f"no worker polls task queue {self.task_queue!r} in namespace {self.client.namespace!r}; "
                "start one with 'durabot worker' or use local_worker=True"
            )
        self._worker_checked_at = now

    # ------------------------------------------------------------------ conversations
    async def decide(
        self, conversation_id: str, approval_id: str, approved: bool, by: str, reason: str | None = None,
        *, admin: bool = False,
    ) -> ApprovalInfo:
        """Approve or deny a pending approval. Raises ApprovalError if it is unknown or already decided,
        ApprovalNotAllowed if ``by`` may not decide it. ``admin``: the caller verified ``by`` as an admin
        of the conversation's workspace or guild (or is an operator), who may always decide."""
        for _ in range(100):
            try:
                return await self._handle(conversation_id).execute_update(
                    Update.DECIDE.value, Decision(approval_id, approved, by, reason, admin=admin),
                    id=f"decide-{approval_id}-{uuid.uuid4().hex[:8]}", result_type=ApprovalInfo,
                )
            except WorkflowUpdateFailedError as exc:
                cause = exc.cause
                if isinstance(cause, ApplicationError) and cause.type == ErrorType.CONTINUING:
                    await asyncio.sleep(0.05)  # the next run takes over in a moment
                    continue
                if isinstance(cause, ApplicationError) and cause.type == ErrorType.APPROVAL_NOT_ALLOWED:
                    raise ApprovalNotAllowed(cause.message, *cause.details[:1]) from None
                raise ApprovalError(cause.message if isinstance(cause, ApplicationError) else str(exc)) from None
            except RPCError as exc:
                raise rpc_error(exc, self.temporal_address, conversation_id, approval=True) from None
        raise ApprovalError(f"conversation {conversation_id!r} did not settle into its next run; try again")

    async def get_approval(self, conversation_id: str, approval_id: str) -> ApprovalInfo | None:
        """One approval with its whole arguments, as the conversation recorded it; None when this run
        does not know it (it ended, or it was decided long ago)."""
        try:
            return await self._handle(conversation_id).query(Query.APPROVAL.value, approval_id, result_type=ApprovalInfo)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise rpc_error(exc, self.temporal_address, conversation_id) from None

    async def cancel(
        self, conversation_id: str, by: str, reason: str | None = None, turn_id: str | None = None
    ) -> None:
        """Cancel the running turn (or a queued one); the conversation itself goes on."""
        try:
            await self._handle(conversation_id).signal(Signal.CANCEL.value, CancelRequest(by, reason, turn_id))
        except RPCError as exc:
            raise rpc_error(exc, self.temporal_address, conversation_id) from None

    async def status(self, conversation_id: str) -> ConversationStatus | None:
        """The conversation's state, or None if it has no running workflow."""
        from temporalio.client import WorkflowExecutionStatus

        handle = self._handle(conversation_id)
        try:
            desc = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise rpc_error(exc, self.temporal_address, conversation_id) from None
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return None
        return await self._query_status(handle, conversation_id)

    async def _query_status(self, handle: WorkflowHandle, conversation_id: str) -> ConversationStatus | None:
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
                lambda wid, cid: self._query_status(self.client.get_workflow_handle(wid), cid),
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

    def subscribe(self, conversation_id: str, turn_id: str, after: str | None = None,
                  idle_timeout: float | None = None) -> AsyncIterator[AgentEvent]:
        """Live events of one turn from the bus (tokens, tools, retry markers), from offset ``after``."""
        return _measured(self.event_bus.subscribe(stream_key(conversation_id, turn_id), after,
                                                  idle_timeout=idle_timeout))


async def _measured(events: AsyncIterator[AgentEvent]) -> AsyncIterator[AgentEvent]:
    from .metrics import event_bus_lag_seconds

    async for ev in events:
        if ev.ts:
            event_bus_lag_seconds.observe(max(0.0, time.time() - ev.ts))
        yield ev


def _delegation_tool(sub: "Agent") -> Tool:
    async def delegate(task: str) -> str:
        raise RuntimeError("delegations run as child workflows, not as tool activities")

    tool = Tool(delegate, name=f"ask_{sub.name}"[:64],
                description=sub.description or f"Delegate a task to the {sub.name!r} agent and get its answer.")
    tool.subagent = sub.name  # type: ignore[attr-defined]
    return tool


def _td(seconds: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=seconds)
