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
        assert result.text.startswith(f"turn {i} (before: {i - 1 if i else 'nothing'}; sees ")
    statuses = await runs_of(agent, "long")
    assert statuses.count("CONTINUED_AS_NEW") >= 3, statuses
    status = await agent.status("long")
    assert status.turns == 300 and status.history_length < 1000


async def test_context_budget_drops_whole_old_messages_and_says_so(make_agent, fake_openai):
    agent = await make_agent(context_chars=300)
    for i in range(6):
        await agent.run(f"message {i} " + "x" * 60, conversation_id="budget")
    sent = fake_openai.requests[-1]["messages"]
    assert sent[0]["role"] == "system" and "earlier message(s)" in sent[0]["content"]
    assert sent[-1]["content"].startswith("message 5 ")
    assert all(m["content"].endswith("x" * 60) for m in sent[1:])  # nothing cut mid-message
    assert sum(len(m["content"]) for m in sent[1:]) <= 300
