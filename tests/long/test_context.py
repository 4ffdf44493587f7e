"""Context that fits the model: a token budget, a summary of older turns made by the model, the
pinned first request, and one retry at half the budget when the model still says it is too long.

The fake model plays a model with a small context (``context_limit``: it counts each request as
agent_core estimates tokens and answers 400 ``context_length_exceeded`` past it) and answers from what
it is sent: a summary request lists the facts it sees, a question lists the facts it can see.
"""

from __future__ import annotations

import re

import pytest

from agent_core import RunFailed
from agent_core.context import SUMMARY_HEADING, SUMMARY_INSTRUCTIONS
from agent_core.tokens import request_tokens
from bots.core.runs import context as context_line
from tests.fakes.openai_server import Reply

SUMMARISE = SUMMARY_INSTRUCTIONS[:40]
FILLER = "the weather was discussed at some length, then the roadmap, then lunch plans and a few jokes"


def is_summary_request(body: dict) -> bool:
    return SUMMARISE in (body["messages"][0].get("content") or "")


def facts_in(body: dict) -> list[str]:
    text = " ".join(m.get("content") or "" for m in body["messages"])
    return sorted(set(re.findall(r"FACT-[A-Z0-9]+", text)))


def remembering_model(body: dict) -> Reply:
    """Summaries keep the facts they see; a question is answered with the facts in view."""
    if is_summary_request(body):
        return Reply(text="Notes: facts " + ", ".join(facts_in(body)) + ". Small talk otherwise.")
    last = body["messages"][-1]["content"] or ""
    if "which facts" in last:
        return Reply(text="facts: " + ", ".join(facts_in(body)))
    return Reply(text=f"noted, {FILLER}")


async def test_300_turns_in_an_8000_token_context(make_agent, fake_openai):
    """No turn fails, no request passes the model's context, and the last answers still know the
    fact of turn 1 (pinned) and one of turn 3 (only in the summary by then)."""
    fake_openai.script = remembering_model
    fake_openai.context_limit = 8_000
    agent = await make_agent(context_tokens=8_000, max_history_events=1_000)
    answers = []
    for i in range(1, 301):
        if i == 1:
            text = "turn 1: please remember FACT-ZEBRA7 for the whole conversation"
        elif i == 3:
            text = "turn 3: and remember FACT-OTTER42 too"
        elif i % 50 == 0:
            text = f"turn {i}: which facts do you know?"
        else:
            text = f"turn {i}: {FILLER}"
        answers.append((await agent.run(text, conversation_id="ctx-300")).text)

    assert fake_openai.overflows == 0
    assert max(fake_openai.request_tokens) <= 8_000 - 1_000  # the answer's room stays free too
    for i in (100, 150, 200, 250, 300):
        assert answers[i - 1] == "facts: FACT-OTTER42, FACT-ZEBRA7", (i, answers[i - 1])
    summaries = [b for b in fake_openai.requests if is_summary_request(b)]
    assert len(summaries) >= 3
    status = await agent.status("ctx-300")
    assert status.turns == 300 and status.summaries == len(summaries)  # made once each, never again
    assert status.context_budget == 7_000 and 0 < status.context_tokens <= 7_000
    assert status.summarised_turn is not None and 100 < status.summarised_turn < 300
    assert "of 7,000 tokens" in context_line(status) and "summarised after turn" in context_line(status)
    # Every round after the first summary sends one, across every continue-as-new.
    first = fake_openai.requests.index(summaries[0])
    rounds = [b for b in fake_openai.requests[first:] if not is_summary_request(b)]
    assert all(SUMMARY_HEADING in (b["messages"][0]["content"] or "") for b in rounds)
    statuses = [ex.status.name async for ex in agent.client.list_workflows(
        f"WorkflowId = '{agent.workflow_id('ctx-300')}'")]
    assert statuses.count("CONTINUED_AS_NEW") >= 2, statuses


async def test_the_summary_is_carried_across_continue_as_new_not_made_again(make_agent, fake_openai):
    fake_openai.script = remembering_model
    agent = await make_agent(context_tokens=2_000, max_history_events=60)
    long = "x " * 150
    for i in range(12):
        await agent.run(f"turn {i} FACT-N{i} {long}", conversation_id="ctx-can")
    made = [b for b in fake_openai.requests if is_summary_request(b)]
    status = await agent.status("ctx-can")
    assert made and status.summaries == len(made)
    statuses = [ex.status.name async for ex in agent.client.list_workflows(
        f"WorkflowId = '{agent.workflow_id('ctx-can')}'")]
    assert "CONTINUED_AS_NEW" in statuses
    fake_openai.requests.clear()
    result = await agent.run("which facts do you know?", conversation_id="ctx-can")
    assert not [b for b in fake_openai.requests if is_summary_request(b)]
    assert "FACT-N0" in result.text and "FACT-N1" in result.text  # pinned, and through the summary


def padded(i: int) -> str:
    return f"message {i} " + "lorem ipsum dolor sit amet " * 40  # about 230 tokens


def brief_model(body: dict) -> Reply:
    last = body["messages"][-1]["content"] or ""
    return Reply(text="Notes." if is_summary_request(body) else "ok" if last.startswith("message") else f"echo: {last}")


async def grown(agent, fake_openai, conversation_id: str) -> int:
    """A conversation of about 4,000 tokens (within the agent's 7,000, below its summary threshold);
    the tokens of its last request."""
    fake_openai.script = brief_model
    for i in range(18):
        await agent.run(padded(i), conversation_id=conversation_id)
    assert not [b for b in fake_openai.requests if is_summary_request(b)]
    return request_tokens(fake_openai.requests[-1]["messages"])


async def test_a_context_length_refusal_is_tried_once_with_half_the_budget(make_agent, fake_openai):
    """The agent believes in 8,000 tokens; the model has fewer than the conversation takes: the round
    goes once more fitted to half the budget, and the answer comes."""
    agent = await make_agent(context_tokens=8_000)
    size = await grown(agent, fake_openai, "ctx-retry")
    assert size > 3_500
    fake_openai.context_limit = size
    result = await agent.run("and now?", conversation_id="ctx-retry")
    assert result.text == "echo: and now?"
    assert fake_openai.overflows == 1 and fake_openai.request_tokens[-1] <= 3_500


async def test_a_model_too_small_even_for_half_gets_a_clear_message(make_agent, fake_openai):
    agent = await make_agent(context_tokens=8_000)
    await grown(agent, fake_openai, "ctx-small")
    fake_openai.context_limit = 1_000
    with pytest.raises(RunFailed) as failed:
        await agent.run("and now?", conversation_id="ctx-small")
    assert "too long for the model's context window" in str(failed.value)
    assert "DURABOT_CONTEXT_TOKENS" in str(failed.value)
    assert fake_openai.overflows == 2  # the first try and one at half the budget, no more
    fake_openai.context_limit = None
    assert (await agent.run("still there?", conversation_id="ctx-small")).text == "echo: still there?"
