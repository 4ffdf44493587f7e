"""``Agent.stream`` follows a turn with one update (submit, answer at the first milestone), and still
works against a worker that predates that update."""

from __future__ import annotations

import dataclasses

from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from agent_core import Agent
from agent_core.contract import WORKFLOW, Update
from agent_core.types import ConversationInput, Progress, ProgressQuery, TurnStatus, UserMessage


async def _event_counts(agent: Agent, conversation: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    async for e in agent.handle(conversation).fetch_history_events():
        counts[e.event_type] = counts.get(e.event_type, 0) + 1
    return counts


async def test_a_streamed_turn_is_one_update(make_agent):
    agent = await make_agent()
    kinds = [ev.kind async for ev in agent.stream("hello", conversation_id="one-update")]
    assert kinds[-1] == "finished" and "token" in kinds
    counts = await _event_counts(agent, "one-update")
    assert counts.get(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED) == 1, counts
    assert counts.get(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) == 2, counts


@workflow.defn(name=WORKFLOW)
class _EarlierConversation:
    """A conversation workflow of an earlier version: it knows submit and wait_progress only, and
    answers every message at once."""

    def __init__(self) -> None:
        self.statuses: dict[str, TurnStatus] = {}

    @workflow.run
    async def run(self, inp: ConversationInput) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update(name=Update.SUBMIT.value)
    def submit(self, msg: UserMessage) -> TurnStatus:
        st = self.statuses[msg.id] = TurnStatus(turn_id=msg.id, state="queued", step="queued")
        done = dataclasses.replace(st, state="finished", text=f"earlier: {msg.text}", step=None)
        done.milestone = st.milestone + 1
        self.statuses[msg.id] = done
        return st

    @workflow.update(name=Update.WAIT_PROGRESS.value)
    async def wait_progress(self, q: ProgressQuery) -> Progress:
        return Progress(turn=self.statuses.get(q.turn_id))


async def test_stream_falls_back_to_submit_on_an_earlier_worker(temporal_config, model):
    agent = Agent("assistant", model=model, temporal=temporal_config, local_worker=False)
    await agent.start()
    try:
        async with Worker(agent.client, task_queue=temporal_config.task_queue, workflows=[_EarlierConversation],
                          workflow_runner=UnsandboxedWorkflowRunner()):
            events = [ev async for ev in agent.stream("hi", conversation_id="earlier")]
            assert (events[-1].kind, events[-1].text) == ("finished", "earlier: hi")
            counts = await _event_counts(agent, "earlier")
            assert counts.get(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED, 0) >= 1
    finally:
        await agent.close()
