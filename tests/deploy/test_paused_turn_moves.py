"""A turn paused for a history-size continue-as-new after a new build was announced resumes on it.

Continuing as new without moving would count, for Temporal, as declining the new build: the run would
not be told of it again and would keep the old build from draining.
"""

from __future__ import annotations

from agent_core import Agent, AgentWorker, ToolContext, tool
from agent_core.deployments import adopt_if_first, promote
from agent_core.versioning import BuildInfo, deployment_name
from tests.deploy.test_two_builds import (
    _has_version, _pending_approval, _routed_to, current_build, eventually, failed_tasks,
)
from tests.runtime.replay_gate import kinds
from tests.fakes.openai_server import Reply


# History events: more than the first approval wait needs, fewer than the second: the turn pauses there.
THRESHOLD = 24


@tool(requires_approval=True)
async def migrate(table: str, ctx: ToolContext) -> str:
    """Migrate a table."""
    return f"migrated {table}"


def two_approvals(body: dict) -> Reply:
    done = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if len(done) == 0:
        return Reply(tool_calls=[("migrate", {"table": "users"})])
    if len(done) == 1:
        return Reply(tool_calls=[("migrate", {"table": "orders"})])
    return Reply(text=" / ".join(done))


async def test_a_turn_paused_after_the_announcement_resumes_on_the_new_build(temporal_config, model, fake_openai):
    fake_openai.script = two_approvals
    agent = Agent("assistant", model=model, tools=[migrate], temporal=temporal_config, local_worker=False,
                  max_history_events=THRESHOLD)
    await agent.start()
    dep = deployment_name(temporal_config.task_queue)
    worker_a = AgentWorker(agent, deployment=BuildInfo("A", True, dep).worker_config())
    worker_b = AgentWorker(agent, deployment=BuildInfo("B", True, dep).worker_config())
    await worker_a.start()
    try:
        assert await adopt_if_first(agent.client, dep, "A", wait=15)
        await eventually(lambda: _routed_to(agent, dep, "A"), what="build A to be current")
        handle = await agent.run_async("migrate everything", conversation_id="long-turn")
        first = await eventually(lambda: _pending_approval(handle), what="the first approval")
        assert await current_build(agent, "long-turn") == "A"

        await worker_b.start()
        await eventually(lambda: _has_version(agent, dep, "B"), what="build B's worker to register")
        await promote(agent.client, dep, "B")
        await eventually(lambda: _routed_to(agent, dep, "B"), what="build B to be current")

        await handle.approve(first, by="ops")
        second = await eventually(lambda: _second_pending(agent, first), what="the second approval")
        await eventually(lambda: _on(agent, "long-turn", "B"), what="the paused turn to move to B")
        status = await agent.status("long-turn")
        assert status.current is not None and [a.status for a in status.current.approvals][-1] == "pending"
        await agent.decide("long-turn", second, True, by="ops")
        assert (await handle.result(15)).text == "migrated users / migrated orders"
        assert await failed_tasks(agent, "long-turn") == []
        # The move happened in the conversation's first run, where the turn started: mid-turn.
        wid = agent.workflow_id("long-turn")
        moves = []
        async for ex in agent.client.list_workflows(f"WorkflowId = '{wid}'"):
            history = await agent.client.get_workflow_handle(wid, run_id=ex.run_id).fetch_history()
            started = history.events[0].workflow_execution_started_event_attributes
            if "version-upgrade" in kinds(history):
                moves.append(started.continued_execution_run_id or "first run")
        assert moves == ["first run"]
    finally:
        await worker_a.shutdown()
        await worker_b.shutdown()
        await agent.close()


async def _second_pending(agent: Agent, first: str) -> str | None:
    status = await agent.status("long-turn")
    if status is None or status.current is None:
        return None
    return next((a.id for a in status.current.approvals if a.status == "pending" and a.id != first), None)


async def _on(agent: Agent, conversation_id: str, build_id: str) -> bool:
    return await current_build(agent, conversation_id) == build_id
