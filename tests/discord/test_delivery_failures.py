"""Deliveries that fail: a refused or unreadable write falls back to plain text and never holds up the
conversation; rate limits and outages are retried and delivered once; refusals for good are not
retried. The faults touch only writes that carry components (a final answer's run link, an approval
card), never the live edits before them."""

from __future__ import annotations

import logging

import pytest

from bots.core.delivery import UNEXPECTED_ATTEMPTS
from tests.discord.conftest import button_ids, deploy, deploy_script
from tests.helpers import wait_for_approval

UI = "http://localhost:8233"


def link_buttons(message: dict) -> list[dict]:
    return [c for row in message.get("components", []) for c in row.get("components", []) if c.get("style") == 5]


def component_writes(fake, thread_id: int, mark: str = "MARK") -> list:
    """Writes with components and the test's mark (not the placeholder and its Stop button)."""
    return [c for c in fake.calls if c.channel == thread_id and c.method in ("POST", "PATCH")
            and isinstance(c.body, dict) and c.body.get("components") and mark in (c.body.get("content") or "")]


async def linked_answer(fake, thread_id: int, text: str) -> dict:
    """The answer ``text`` once delivered by the normal path (with its run link button)."""
    return await fake.wait_for(
        lambda: next((m for m in fake.bot_messages(thread_id) if link_buttons(m) and m["content"] == text), None),
        timeout=15, what=f"the delivered answer {text!r}")


@pytest.mark.parametrize("how", ["garbled", "invalid"])
async def test_failing_answer_falls_back_and_the_next_turn_is_answered(make_agent, fake_openai, fake_discord,
                                                                       adapter, how, caplog):
    fake = fake_discord
    agent = await make_agent()
    await adapter(agent, TEMPORAL_UI_URL=UI)
    fake.refuse_components["MARK-1"] = how  # the final write, with its link button, always fails
    question = await fake.user_message("MARK-1 please")
    thread_id = int(question["id"])
    await fake.wait_for(lambda: len(component_writes(fake, thread_id)) >= UNEXPECTED_ATTEMPTS,
                        timeout=15, what="the normal path's attempts")
    await fake.user_message("next", channel_id=thread_id)
    await linked_answer(fake, thread_id, "echo: next")  # not held up behind the failing notice
    first = fake.bot_messages(thread_id)[0]
    assert first["content"] == "echo: MARK-1 please" and first["components"] == []
    assert len(fake.bot_messages(thread_id)) == 2
    assert len([c for c in component_writes(fake, thread_id) if "MARK-1" in c.body["content"]]) == UNEXPECTED_ATTEMPTS
    assert "sent as plain text" in caplog.text


async def test_refused_card_is_posted_once_as_plain_text(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    fake_openai.script = deploy_script
    agent = await make_agent(tools=[deploy])
    await adapter(agent)
    fake.refuse_components["`deploy`"] = "invalid"  # the card with its buttons
    question = await fake.user_message("deploy the api")
    thread_id = int(question["id"])
    card = await fake.wait_for(
        lambda: next((m for m in fake.bot_messages(thread_id) if "Approval needed" in m["content"]), None),
        timeout=15, what="the card as plain text")
    assert not button_ids(card) and "deploy" in card["content"]
    conv = f"discord:{fake.guild_id}:{fake.channel_id}:{thread_id}"
    handle = agent.get_run(conv, str(question["id"]))
    await agent.decide(conv, await wait_for_approval(handle), True, by=fake.alice["id"])
    await fake.wait_for(lambda: "done: deployed api" in fake.bot_messages(thread_id)[0]["content"],
                        what="the answer after approval")
    await fake.wait_for(lambda: "Approved" in fake.find_message(int(card["id"]))["content"],
                        what="the decision on the card")
    assert len(fake.bot_messages(thread_id)) == 2  # the answer and the card, each posted once


async def test_rate_limit_and_server_errors_are_retried_and_delivered_once(make_agent, fake_openai, fake_discord,
                                                                          adapter):
    fake = fake_discord
    agent = await make_agent()
    await adapter(agent, TEMPORAL_UI_URL=UI)
    fake.fail_components["MARK-3"] = [429, 503, 503]
    question = await fake.user_message("MARK-3 flaky")
    thread_id = int(question["id"])
    await linked_answer(fake, thread_id, "echo: MARK-3 flaky")
    assert fake.fail_components["MARK-3"] == []
    assert [c.status for c in component_writes(fake, thread_id)] == [429, 503, 503, 200]
    assert len(fake.bot_messages(thread_id)) == 1


async def test_permanent_refusal_is_not_retried(make_agent, fake_openai, fake_discord, adapter, caplog):
    caplog.set_level(logging.WARNING)
    fake = fake_discord
    agent = await make_agent()
    await adapter(agent, TEMPORAL_UI_URL=UI)
    fake.refuse_components["MARK-4"] = "forbidden"
    question = await fake.user_message("MARK-4 closed")
    thread_id = int(question["id"])
    await fake.wait_for(lambda: component_writes(fake, thread_id), what="the refused write")
    await fake.user_message("after", channel_id=thread_id)
    # Deliveries go out in order: once the next answer is there, the refused one was settled.
    await linked_answer(fake, thread_id, "echo: after")
    assert [c.status for c in component_writes(fake, thread_id) if "MARK-4" in c.body["content"]] == [403]
    assert "Missing Access" in caplog.text and "not retried" in caplog.text
