"""``AgentWorker``: runs the conversation workflow and its activities for one agent."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any, Protocol

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkerDeploymentConfig
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from .activities import AgentActivities
from .events import EventBus
from .hooks import Hooks
from .model import ChatModel
from .store import TranscriptStore
from .tools import Tool
from .workflow import ConversationWorkflow

log = logging.getLogger(__name__)

# Temporal's sandbox guards workflow code against non-determinism. durabot has one workflow, its own,
# and no user code ever runs in it (tools, hooks and models run in activities), so workers run it
# unsandboxed: about a quarter less worker CPU per turn. The test suite replays recorded histories
# under the sandbox (SANDBOXED_RUNNER), so a non-deterministic change still fails CI.
SANDBOXED_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("agent_core")
)
_RUNNER = UnsandboxedWorkflowRunner()


class ServedAgent(Protocol):
    """What a worker needs of the agent it serves (an ``Agent``)."""

    task_queue: str
    system_prompt: str
    model: ChatModel
    tools: list[Tool]
    event_bus: EventBus
    store: TranscriptStore
    fingerprint: str
    manifest: dict[str, str]
    hooks: list[Hooks]

    @property
    def client(self) -> Client: ...

    @property
    def client_if_connected(self) -> Client | None: ...

    async def start(self) -> Any: ...


class AgentWorker:
    """Serves an agent's task queue. Use one per process in production (``durabot worker``)."""

    def __init__(
        self,
        agent: ServedAgent,
        *,
        event_bus: EventBus | None = None,
        store: TranscriptStore | None = None,
        task_queue: str | None = None,
        graceful_shutdown: float = 30.0,
        max_concurrent_activities: int = 200,
        extra_activities: list[Any] | None = None,
        sandboxed: bool = False,
        deployment: WorkerDeploymentConfig | None = None,
    ) -> None:
        """``deployment`` runs the worker as one version of a worker deployment (see versioning.py);
        None polls unversioned."""
        self.agent = agent
        self.task_queue = task_queue or agent.task_queue
        self.activities = AgentActivities(
            system_prompt=agent.system_prompt, model=agent.model, tools=agent.tools,
            bus=event_bus or agent.event_bus, store=store or agent.store,
            fingerprint=agent.fingerprint, manifest=agent.manifest, hooks=agent.hooks,
            budgets=getattr(agent, "budgets", None),
            blobs=getattr(agent, "blobs", None), file_limits=getattr(agent, "file_limits", None),
        )
        self.graceful_shutdown = graceful_shutdown
        self.max_concurrent_activities = max_concurrent_activities
        self.extra_activities = extra_activities or []
        self.runner = SANDBOXED_RUNNER if sandboxed else _RUNNER
        self.deployment = deployment
        self._worker: Worker | None = None
        self._task: asyncio.Task | None = None

    def build(self) -> Worker:
        return Worker(
            self.agent.client,
            task_queue=self.task_queue,
            workflows=[ConversationWorkflow],
            activities=[*self.activities.definitions(), *self.extra_activities],
            workflow_runner=self.runner,
            graceful_shutdown_timeout=timedelta(seconds=self.graceful_shutdown),
            max_concurrent_activities=self.max_concurrent_activities,
            deployment_config=self.deployment,
        )

    async def start(self) -> None:
        """Start polling in the background (the embedded local worker)."""
        if self.agent.client_if_connected is None:
            await self.agent.start()
        self._worker = self.build()
        self._task = asyncio.create_task(self._worker.run())
        await asyncio.sleep(0)

    async def run(self) -> None:
        """Poll until cancelled or shut down (a worker process)."""
        if self.agent.client_if_connected is None:
            await self.agent.start()
        self._worker = self.build()
        await self._worker.run()

    async def shutdown(self) -> None:
        """Stop polling, let running activities finish within the grace period, then return."""
        if self._worker is not None:
            await self._worker.shutdown()
        if self._task is not None:
            try:
                await self._task
            except Exception as exc:
                log.warning("worker ended with %s", exc)
            self._task = None
