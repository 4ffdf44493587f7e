"""Two worker builds on one server: a deploy never breaks a running conversation.

Build A serves conversations; build B, whose workflow emits one more command (behind its own
``workflow.patched``), is deployed beside it and made current. Conversations of A finish the turn
they are in on A, move to B at their next turn (continue-as-new between turns), and none of them
fails a workflow task; new conversations start on B; then A drains and its worker stops.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from bots.discord.commands import describe as discord_status
from bots.slack.commands import describe as slack_status
from agent_core import Agent, AgentWorker, ToolContext, tool
from agent_core.contract import WORKFLOW
from agent_core.types import Carry, ConversationInput
from agent_core.deployments import adopt_if_first, describe, promote
from agent_core.versioning import BuildInfo, deployment_name
from agent_core.worker import SANDBOXED_RUNNER
from agent_core.workflow import ConversationWorkflow
from tests.runtime.replay_gate import kinds, save
from tests.fakes.openai_server import Reply

BUILD_B_PATCH = "test-build-b-pause"


@workflow.defn(name=WORKFLOW)
class BuildBWorkflow(ConversationWorkflow):
    """Build B's conversation workflow: a changed one, a timer before every turn, behind a patch."""

    @workflow.run
    async def run(self, inp: ConversationInput) -> Carry:
        return await super().run(inp)

    async def _run_turn(self, msg, resume=None):  # type: ignore[override]
        if workflow.patched(BUILD_B_PATCH):
            await workflow.sleep(timedelta(milliseconds=1))
        await super()._run_turn(msg, resume)


@tool(requires_approval=True)
async def deploy_service(name: str, ctx: ToolContext) -> str:
    """Deploy a service."""
    return f"deployed {name}"


def script(body: dict) -> Reply:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text=f"tool said: {last['content']}")
    if "deploy" in last["content"]:
        return Reply(tool_calls=[("deploy_service", {"name": "api"})])
    return Reply(text=f"echo {last['content']}")


async def eventually(check, timeout: float = 15.0, what: str = "condition"):
    """Poll ``check`` (async, returns a truthy value when done) until it holds or time runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.1)


async def run_build(client_agent: Agent, version: BuildInfo) -> AgentWorker:
    worker = AgentWorker(client_agent, deployment=version.worker_config())
    await worker.start()
    return worker


async def current_build(agent: Agent, conversation_id: str) -> str:
    """The build id the conversation's open run is pinned to, as the server records it."""
    desc = await agent.client.get_workflow_handle(agent.workflow_id(conversation_id)).describe()
    return desc.raw_description.workflow_execution_info.versioning_info.deployment_version.build_id


async def failed_tasks(agent: Agent, conversation_id: str) -> list[str]:
    """Workflow task failures (a non-determinism error is one) in every run of the conversation."""
    wid = agent.workflow_id(conversation_id)
    found = []
    async for ex in agent.client.list_workflows(f"WorkflowId = '{wid}'"):
        history = await agent.client.get_workflow_handle(wid, run_id=ex.run_id).fetch_history()
        for ev in history.events:
            if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                found.append(f"{ex.run_id} event {ev.event_id}: {ev.workflow_task_failed_event_attributes.failure.message}")
    return found


async def test_conversations_of_build_a_move_to_build_b_without_breaking(temporal_config, model, fake_openai):
    fake_openai.script = script
    agent = Agent("assistant", model=model, tools=[deploy_service], temporal=temporal_config, local_worker=False)
    await agent.start()
    dep = deployment_name(temporal_config.task_queue)
    build_a, build_b = BuildInfo("A", True, dep), BuildInfo("B", True, dep)
    worker_a = await run_build(agent, build_a)
    worker_b: Worker | None = None
    try:
        assert await adopt_if_first(agent.client, dep, "A", wait=15)  # the first build becomes current
        await eventually(lambda: _routed_to(agent, dep, "A"), what="build A to be current")

        # On build A: two idle conversations, and one whose turn waits for an approval.
        for c in ("old-1", "old-2"):
            assert (await agent.run(f"hello {c}", conversation_id=c)).text == f"echo hello {c}"
        waiting = await agent.run_async("please deploy", conversation_id="old-busy")
        approval = await eventually(lambda: _pending_approval(waiting), what="the approval card")
        assert {await current_build(agent, c) for c in ("old-1", "old-2", "old-busy")} == {"A"}
        on_a = f"TemporalWorkerDeploymentVersion = '{dep}:A' AND ExecutionStatus = 'Running'"  # ':' here
        await eventually(lambda: _count_is(agent, on_a, 3), what="visibility to list the runs pinned to A")

        # Build B beside A, then made current.
        worker_b = Worker(agent.client, task_queue=temporal_config.task_queue, workflows=[BuildBWorkflow],
                          activities=worker_a.activities.definitions(), deployment_config=build_b.worker_config(),
                          workflow_runner=UnsandboxedWorkflowRunner())  # as production workers run
        asyncio.ensure_future(worker_b.run())
        await eventually(lambda: _has_version(agent, dep, "B"), what="build B's worker to register")
        state = await promote(agent.client, dep, "B")
        assert state.current == "B"
        await eventually(lambda: _routed_to(agent, dep, "B"), what="build B to be current")

        # The turn in flight finishes on A, where it started.
        await waiting.approve(approval, by="tester")
        assert (await waiting.result(15)).text == "tool said: deployed api"
        # New conversations start on B.
        assert (await agent.run("hi", conversation_id="new-1")).text == "echo hi"
        assert await current_build(agent, "new-1") == "B"
        # Every old conversation's next turns run, and it is now on B.
        for c in ("old-1", "old-2", "old-busy"):
            for i in range(2):
                assert (await agent.run(f"next {i}", conversation_id=c)).text == f"echo next {i}"
            assert await current_build(agent, c) == "B", c
            status = await agent.status(c)
            assert status.build_id == "B"
            # /durabot status words it on both platforms (the same ConversationStatus feeds both)
            assert "**Build:** `B`" in discord_status(status) and "build `B`" in slack_status(status, "")
        for c in ("old-1", "old-2", "old-busy", "new-1"):
            assert await failed_tasks(agent, c) == [], c
        # The run that moved (build A's code) replays: the move itself is deterministic.
        moved = await moved_run(agent, "old-1")
        assert "version-upgrade" in kinds(moved)
        await Replayer(workflows=[ConversationWorkflow], workflow_runner=SANDBOXED_RUNNER).replay_workflow(moved)
        if os.environ.get("RECORD_HISTORIES"):
            save("version_upgrade", moved)

        # A serves nothing any more: no open run is pinned to it, it drains, and its worker stops.
        await eventually(lambda: _count_is(agent, on_a, 0), what="no open run pinned to A")
        drained = await eventually(lambda: _drainage(agent, dep, "A", "drained"), timeout=20, what="A to drain")
        assert drained.status == "drained"
        await worker_a.shutdown()
        assert (await agent.run("after A", conversation_id="old-1")).text == "echo after A"
    finally:
        await worker_a.shutdown()
        if worker_b is not None:
            await worker_b.shutdown()
        await agent.close()


async def moved_run(agent: Agent, conversation_id: str):
    """The history of the conversation's run that continued as new onto the new build."""
    wid = agent.workflow_id(conversation_id)
    async for ex in agent.client.list_workflows(f"WorkflowId = '{wid}' AND ExecutionStatus = 'ContinuedAsNew'"):
        return await agent.client.get_workflow_handle(wid, run_id=ex.run_id).fetch_history()
    raise AssertionError(f"{conversation_id} never continued as new")


async def _count_is(agent: Agent, query: str, expected: int) -> bool:
    return (await agent.client.count_workflows(query)).count == expected


async def _routed_to(agent: Agent, dep: str, build_id: str) -> bool:
    state = await describe(agent.client, dep)
    return state is not None and state.current == build_id and state.propagated


async def _has_version(agent: Agent, dep: str, build_id: str) -> bool:
    state = await describe(agent.client, dep)
    return state is not None and state.version(build_id) is not None


async def _drainage(agent: Agent, dep: str, build_id: str, wanted: str):
    state = await describe(agent.client, dep)
    version = state.version(build_id) if state else None
    return version if version is not None and version.drainage == wanted else None


async def _pending_approval(handle) -> str | None:
    st = await handle.status()
    return next((a.id for a in st.approvals if a.status == "pending"), None)
