"""The ``Agent``: the client side of a durable agent, with an embedded worker by default."""

from __future__ import annotations

import asyncio
import functools
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
from temporalio.service import RPCError

from . import limits as budgets
from .contract import WORKFLOW, Update
from .errors import NoWorkerError, UserError
from .events import EventBus, InMemoryEventBus, measured, stream_key
from .fingerprint import build_manifest, fingerprint_of
from .attachments import FileLimits
from .blobs import BlobStore, LocalBlobStore
from .model import ChatModel, DemoModel
from .starts import RunStarts
from .store import InMemoryTranscriptStore, TranscriptStore
from .handle import Conversation, RunHandle, RunResult
from .options import Limits, ToolOptions, grouped
from .profiles import ProfileSet
from .budgets import Budgets, InMemoryBudgets
from .conversation_calls import ConversationCalls
from .temporal import TemporalConfig, connection, rpc_error, wait_for_poller
from .tokens import input_budget, model_window
from .tools import Tool, checked_tools, delegation_tool
from .types import (
    AgentEvent, AgentMode, AgentSpec, BlobRef, BudgetScope, Carry, ChatMessage, DeliveryTarget, ProfileRef,
    Progress, Timeouts, ToolSpec, TurnStatus, UserMessage,
    timeouts_for, workflow_id_for,
)
from .worker import AgentWorker

log = logging.getLogger(__name__)

MAX_MESSAGE = 100_000  # characters of one user message


class Agent(ConversationCalls):
    """A durable agent, seen from the client side: runs, approvals, conversations. ``limits``,
    ``tool_options`` and ``timeouts`` group its options; the fields of the first two are also taken as
    keywords (``max_iterations=5``, ``approval="all"``, ``hooks=[...]``...), as they always were."""

    def __init__(
        self,
        name: str,
        model: ChatModel | None = None,
        system_prompt: str = "",
        tools: Iterable[Tool] = (),
        *,
        limits: Limits | None = None,
        tool_options: ToolOptions | None = None,
        timeouts: Timeouts | None = None,
        mode: AgentMode = AgentMode.INTERACTIVE,
        temporal: TemporalConfig | None = None,
        temporal_client: tuple[Client, str] | None = None,
        local_worker: bool = True,
        event_bus: EventBus | None = None,
        store: TranscriptStore | None = None,
        fingerprint_check: bool = True,
        subagents: Iterable["Agent"] = (),
        description: str = "",
        profiles: ProfileSet | None = None,
        budgets: Budgets | None = None,
        blobs: "BlobStore | None" = None,
        file_limits: FileLimits | None = None,
        **options: Any,
    ) -> None:
        self.temporal_config, self._client, self.task_queue = connection(temporal, temporal_client)
        if not name or "/" in name:
            raise UserError(f"agent name {name!r} must be non-empty and contain no '/'")
        self.limits, self.tool_options = grouped(options, limits, tool_options)
        self.limits.check()
        self.name, self.description = name, description
        self.model: ChatModel = model or DemoModel()
        self.system_prompt = system_prompt
        self.tools = checked_tools(tools)
        self.mode = AgentMode(mode)
        self.timeouts = timeouts or timeouts_for(self.mode)
        self.fingerprint_check = fingerprint_check
        self.subagents = _checked_subagents(subagents)
        self.profiles = profiles  # per-channel profiles (DURABOT_PROFILES); the adapters pick one per message
        self.budgets: Budgets = budgets or InMemoryBudgets()  # token counters (Redis across processes)
        self.tools.extend(delegation_tool(sub.name, sub.description) for sub in self.subagents)
        self._mcp_loaded = not self.mcp_servers  # their tools are listed at start(), never in workflow code
        self.local_worker = local_worker
        self._default_bus = event_bus is None
        self.event_bus: EventBus = event_bus or InMemoryEventBus()
        self.store: TranscriptStore = store or InMemoryTranscriptStore()
        # File bytes by content address; every worker must read the same store (see agent_core.blobs).
        self.blobs: BlobStore = blobs if blobs is not None else LocalBlobStore()
        self.file_limits = file_limits or FileLimits()
        self._compute_fingerprint()
        self._worker: AgentWorker | None = None
        self._worker_checked_at = 0.0
        self._worker_check: asyncio.Future | None = None
        self._starts = RunStarts()

    # The grouped options under the names they always had.
    approval = property(lambda self: self.tool_options.approval)
    hooks = property(lambda self: self.tool_options.hooks)
    mcp_servers = property(lambda self: self.tool_options.mcp_servers)
    admin_only = property(lambda self: self.tool_options.admin_only)
    local_tools = property(lambda self: self.tool_options.local_tools)
    max_iterations = property(lambda self: self.limits.max_iterations)
    context_messages = property(lambda self: self.limits.context_messages)
    context_chars = property(lambda self: self.limits.context_chars)

    @property
    def context_tokens(self) -> int:
        """Tokens a model round may send: the context window (given, or known for the model's name)
        less room for the answer."""
        window = self.limits.context_tokens or model_window(self.model.identity)
        return input_budget(window)
    max_history_events = property(lambda self: self.limits.max_history_events)
    max_depth = property(lambda self: self.limits.max_depth)

    def _compute_fingerprint(self) -> None:
        self.manifest = build_manifest(
            name=self.name, system_prompt=self.system_prompt, model_identity=self.model.identity,
            tools=self.tools, approval=self.approval.value, mode=self.mode.value,
            max_iterations=self.max_iterations, context_messages=self.context_messages,
            context_chars=self.context_chars or 0, extra={"hooks": ",".join(h.name for h in self.hooks)} if self.hooks else None,
        )
        if self.profiles is not None:  # a worker with other profiles is refused, as for any other setting
            self.manifest.update(self.profiles.manifest())
        if self.admin_only:  # only when set, so the fingerprints of agents without it stay as they were
            self.manifest["admin_only"] = ",".join(self.admin_only)
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
        """The Temporal client, for calls the agent does not wrap (raises UserError until started)."""
        if self._client is None:
            raise UserError("the agent is not started: use 'async with agent:' or 'await agent.start()'")
        return self._client

    @property
    def client_if_connected(self) -> Client | None:
        """The Temporal client, or None before the agent started (for health checks)."""
        return self._client

    async def start(self) -> "Agent":
        await self._load_mcp_tools()
        names = {t.name for t in self.tools}
        unknown = sorted(set(self.local_tools) - names)
        if unknown:  # a misspelt name would silently leave that tool a regular activity
            raise UserError(f"local_tools (DURABOT_LOCAL_TOOLS) names tools this agent does not have: "
                            f"{', '.join(map(repr, unknown))}; its tools: {', '.join(sorted(names)) or 'none'}")
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
                            subagent=getattr(t, "subagent", None), admin_only=t.name in self.admin_only,
                            local=t.name in self.local_tools)
                   for t in self.tools],
            task_queue=self.task_queue, depth=depth,
            subagents=[s.spec(depth + 1, max_depth) for s in self.subagents] if delegate else [],
            max_iterations=self.max_iterations, timeouts=self.timeouts, context_messages=self.context_messages,
            max_history_events=self.max_history_events, context_chars=self.context_chars or 0,
            context_tokens=self.context_tokens,
            fingerprint=self.fingerprint if self.fingerprint_check else None,
            manifest=self.manifest if self.fingerprint_check else {},
        )

    def workflow_id(self, conversation_id: str) -> str:
        return workflow_id_for(self.name, conversation_id)

    def handle(self, conversation_id: str) -> WorkflowHandle:
        """The Temporal handle of a conversation's workflow (its latest run; ``result()`` is a Carry)."""
        return self.client.get_workflow_handle(self.workflow_id(conversation_id), result_type=Carry)

    def _conversation(self, conversation_id: str) -> Conversation:
        return Conversation(
            id=conversation_id, workflow=self.handle(conversation_id), address=self.temporal_address,
            decide=functools.partial(self.decide, conversation_id),
            cancel=functools.partial(self.cancel, conversation_id),
            subscribe=functools.partial(self.subscribe, conversation_id),
        )

    # ------------------------------------------------------------------ runs
    async def run(self, text: str, conversation_id: str, **kwargs: Any) -> RunResult:
        """Send a message and wait for the answer. Raises RunCancelled / RunFailed / FingerprintMismatch."""
        handle = await self.run_async(text, conversation_id, _wait=True, **kwargs)
        return await handle.result(timeout=self.timeouts.run)

    async def stream(self, text: str, conversation_id: str, **kwargs: Any) -> AsyncIterator[AgentEvent]:
        """Send a message and yield its events: tokens, tools, approvals, and a last finished/cancelled/error."""
        handle = await self.run_async(text, conversation_id, _follow=True, **kwargs)
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
        profile: ProfileRef | None = None,
        budget: BudgetScope | None = None,
        attachments: Iterable[BlobRef] = (),
        existed: bool | None = None,
        _wait: bool = False,
        _follow: bool = False,
    ) -> "RunHandle":
        """Send a message (queued if a turn is running) and return a handle to its run at once.

        ``approvers`` ("requester", "anyone" and/or user ids) and ``admins`` say who may decide the
        run's approvals; the workflow records them with each approval. Without them anyone may.
        ``attachments``: the message's files, already put in ``self.blobs`` (see ``attach``).
        ``existed``: what the caller knows of the conversation, so the send is one call to Temporal
        with no look-up first: False when none ever ran under this id (a thread just opened), True
        when one did (running, or ended: its next run restores its context). None (the default):
        look it up once, unless this client saw it running lately."""
        if len(text) > MAX_MESSAGE:  # Temporal refuses payloads past 2 MB; say so instead of failing
            text = text[:MAX_MESSAGE] + f"\n[message truncated: {len(text)} characters in all]"
        if message_id is not None and len(message_id) > budgets.NAME_CHARS:
            raise UserError(f"message_id is {len(message_id)} characters long; use at most {budgets.NAME_CHARS}")
        msg = budgets.bound_user_message(UserMessage(  # by encoded bytes: non-ASCII takes 6 to 12 each
            id=message_id or uuid.uuid4().hex, text=text, user=user, user_name=user_name,
            context=list(context or []), deliver_to=deliver_to,
            approvers=None if approvers is None else list(approvers), admins=list(admins or []),
            profile=profile, budget=budget,
            attachments=list(attachments),
        ))
        await self._ensure_worker()
        start = await self._start_operation(conversation_id, existed)
        update_id = f"msg-{msg.id}-{uuid.uuid4().hex[:8]}"  # the workflow itself dedups by message id
        accept_within = None if self.mode is AgentMode.AUTONOMOUS else max(30.0, self.timeouts.llm / 4)
        try:
            # _wait: one update that returns when the turn ends; _follow: one that returns at its first
            # milestone (an approval asked, or the end). Either way no separate long poll to start with.
            waiting = Update.SUBMIT_AND_WAIT if _wait else Update.SUBMIT_AND_FOLLOW if _follow else None
            if waiting is not None:
                update = await asyncio.wait_for(
                    self.client.start_update_with_start_workflow(
                        waiting.value, msg, start_workflow_operation=start, id=update_id,
                        wait_for_stage=WorkflowUpdateStage.ACCEPTED, result_type=Progress,
                    ),
                    accept_within,
                )
                if not await _refused_as_unknown(update):
                    self._starts.remember(conversation_id)
                    return RunHandle(self._conversation(conversation_id), msg.id, None, waiting=update)
                # A worker of an earlier version: submit, then follow with long polls.
                log.info("the worker does not know %r; submitting with %r", waiting.value, Update.SUBMIT.value)
                start = await self._start_operation(conversation_id, True)
                update_id = f"msg-{msg.id}-{uuid.uuid4().hex[:8]}"  # the refused id's outcome is kept
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
        self._starts.remember(conversation_id)
        return RunHandle(self._conversation(conversation_id), msg.id, status)

    def get_run(self, conversation_id: str, turn_id: str) -> "RunHandle":
        return RunHandle(self._conversation(conversation_id), turn_id, None)

    async def _ensure_worker(self) -> None:
        """Interactive mode fails fast when nothing polls the task queue. One check at a time: the
        messages that arrive while it runs wait for its answer instead of each asking the server."""
        if self.mode is AgentMode.AUTONOMOUS or (self.local_worker and self._worker is not None):
            return
        if time.monotonic() - self._worker_checked_at < 10:
            return
        if self._worker_check is None or self._worker_check.done():
            self._worker_check = asyncio.ensure_future(self._check_worker())
        await asyncio.shield(self._worker_check)

    async def _check_worker(self) -> None:
        now = time.monotonic()
        await wait_for_poller(self.client, self.task_queue, self.temporal_address)
        self._worker_checked_at = now

    # ------------------------------------------------------------------ conversations
    async def attach(self, data: bytes, name: str, media_type: str | None = None) -> BlobRef:
        """Put a file in the blob store; pass the reference in ``run_async(..., attachments=[...])``."""
        from .attachments import media_type_of

        return await self.blobs.put(data, name, media_type_of(name, media_type))

    async def _start_operation(self, conversation_id: str, existed: bool | None = None) -> WithStartWorkflowOperation:
        """Start the conversation's workflow unless it runs: the start half of an update-with-start."""
        return WithStartWorkflowOperation(
            WORKFLOW,
            await self._starts.input(self.handle(conversation_id), conversation_id, self.spec(),
                                     self.temporal_address, existed),
            id=self.workflow_id(conversation_id), task_queue=self.task_queue, result_type=Carry,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )

    def subscribe(self, conversation_id: str, turn_id: str, after: str | None = None,
                  idle_timeout: float | None = None) -> AsyncIterator[AgentEvent]:
        """Live events of one turn from the bus (tokens, tools, retry markers), from offset ``after``."""
        return measured(self.event_bus.subscribe(stream_key(conversation_id, turn_id), after,
                                                  idle_timeout=idle_timeout))


def _checked_subagents(subagents: Iterable["Agent"]) -> list["Agent"]:
    subs = list(subagents)
    for sub in subs:
        if not isinstance(sub, Agent):
            raise UserError(f"sub-agent {sub!r} is not an Agent")
    return subs


async def _refused_as_unknown(update: Any) -> bool:
    """Whether the workflow refused ``update`` for want of a handler (a worker older than this client).
    A refusal comes back with the accepted stage, so its outcome is known and reading it makes no call;
    an update that is running is left alone."""
    if getattr(update, "_known_outcome", None) is None:
        return False
    try:
        await update.result()
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError) and "expected but not found" in (cause.message or ""):
            return True
        raise
    return False
