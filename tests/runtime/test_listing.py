"""list_conversations: the server filters on the conversation id prefix; what does not answer in time is
listed as unknown, never dropped."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace

import pytest

from agent_core import Agent
from agent_core.errors import UserError
from agent_core.types import ConversationInput
from agent_core.workflow import ConversationWorkflow


async def test_prefixes_are_literal_and_scoped_to_the_agent_and_queue(temporal_config, model):
    # Nothing polls this queue: the conversations never answer, which also shows the deadline at work.
    queue = f"{temporal_config.task_queue}-listing"
    agent = Agent("lister", model=model, local_worker=False,
                  temporal=replace(temporal_config, task_queue=queue))
    other_queue = Agent("lister", model=model, local_worker=False,
                        temporal=replace(temporal_config, task_queue=f"{queue}-other"))
    await agent.start()
    await other_queue.start()
    tag = uuid.uuid4().hex[:8]
    mine = [f"{tag}:it's:1", f"{tag}:it's:2", f"{tag}:50%_a:1"]
    near_misses = [f"{tag}:its:1", f"{tag}:50xya:1", f"{tag}:50%_ab"]  # what LIKE wildcards would match
    started: list[tuple[Agent, str]] = []
    try:
        for who, cid in [(agent, c) for c in mine + near_misses] + [(other_queue, f"{tag}:it's:3")]:
            await who.client.start_workflow(
                ConversationWorkflow.run, ConversationInput(cid, who.spec(), restored=True),
                id=who.workflow_id(cid), task_queue=who.task_queue)
            started.append((who, cid))
        deadline = time.monotonic() + 20
        while await agent.count_conversations(f"{tag}:") < 6:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)  # poll interval

        t0 = time.monotonic()
        listed = await agent.list_conversations(f"{tag}:it's:", detail_timeout=0.5)
        assert time.monotonic() - t0 < 5
        assert sorted(s.conversation_id for s in listed) == mine[:2]  # not the other queue's, not "its"
        assert all(s.state == "unknown" and s.started_at for s in listed)
        odd = await agent.list_conversations(f"{tag}:50%_a:", detail_timeout=0.2)
        assert [s.conversation_id for s in odd] == [mine[2]]
        both = await agent.list_conversations(prefixes=[f"{tag}:it's:1", f"{tag}:50%"], detail_timeout=0.2)
        assert sorted(s.conversation_id for s in both) == sorted([mine[0], mine[2], near_misses[2]])
        assert len(await agent.list_conversations(f"{tag}:", limit=4, detail_timeout=0.2)) == 4
        assert await agent.count_conversations(prefixes=[f"{tag}:it's:", f"{tag}:its:"]) == 3
        assert await agent.list_conversations(prefixes=[]) == []
        assert await agent.count_conversations(prefixes=[]) == 0
        with pytest.raises(UserError, match="backslash"):
            await agent.list_conversations("a\\b")
    finally:
        for who, cid in started:
            await who.client.get_workflow_handle(who.workflow_id(cid)).terminate("test over")
        await other_queue.close()
        await agent.close()
