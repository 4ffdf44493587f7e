"""Long conversations: continue-as-new is invisible to callers and keeps the context."""

from __future__ import annotations

from tests.fakes.openai_server import Reply


def context_script(body: dict) -> Reply:
    users = [m["content"] for m in body["messages"] if m["role"] == "user"]
    previous = users[-2] if len(users) > 1 else "nothing"
    return Reply(text=f"turn {users[-1]} (before: {previous}; sees {len(body['messages'])})")


async def runs_of(agent, conversation_id: str) -> list[str]:
    wid = agent.workflow_id(conversation_id)
    return [ex.status.name async for ex in agent.client.list_workflows(f"WorkflowId = '{wid}'")]


async def test_300_turns_continue_as_new_several_times(make_agent, fake_openai):
    fake_openai.script = context_script
    agent = await make_agent(max_history_events=1000, context_messages=40)
    for i in range(300):
        result = await agent.run(str(i), conversation_id="long")
        sees = min(2 * i + 1, 40)
        assert result.text == f"turn {i} (before: {i - 1 if i else 'nothing'}; sees {sees})"
    statuses = await runs_of(agent, "long")
    assert statuses.count("CONTINUED_AS_NEW") >= 3, statuses
    status = await agent.status("long")
    assert status.turns == 300 and status.history_length < 1000
