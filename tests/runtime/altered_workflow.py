"""A deliberately broken build of the conversation workflow, for the replay gate's own test: it starts
a timer before every turn without ``workflow.patched``, as a careless change would."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from agent_core.contract import WORKFLOW
from agent_core.types import Carry, ConversationInput
from agent_core.workflow import ConversationWorkflow


@workflow.defn(name=WORKFLOW)
class UnpatchedChange(ConversationWorkflow):
    @workflow.run
    async def run(self, inp: ConversationInput) -> Carry:
        return await super().run(inp)

    async def _run_turn(self, msg, resume=None):  # type: ignore[override]
        await workflow.sleep(timedelta(milliseconds=1))  # a new command, not behind a patch
        await super()._run_turn(msg, resume)
