"""Approve / Deny buttons: who may click, stale clicks, and buttons that outlive the adapter."""

from __future__ import annotations

import copy

from tests.discord.conftest import button_ids, deploy, deploy_script, ephemeral_texts


def _card(fake, thread_id):
    cards = [m for m in fake.bot_messages(thread_id) if button_ids(m)]
    return cards[0] if cards else None


async def _ask_for_deploy(fake, fake_openai):
    fake_openai.script = deploy_script
    question = await fake.user_message("deploy the api")
    thread_id = int(question["id"])
    card = await fake.wait_for(lambda: _card(fake, thread_id), what="the approval card")
    return thread_id, copy.deepcopy(card)  # as a person's client saw it (a later click may carry it stale)


async def test_requester_approves_others_are_refused(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    agent = await make_agent(tools=[deploy])
    await adapter(agent)
    thread_id, card = await _ask_for_deploy(fake, fake_openai)
    assert "Approval needed" in card["content"] and "`deploy`" in card["content"]
    approve, deny = button_ids(card)
    assert len(approve) <= 100 and approve.startswith("db:y:") and deny.startswith("db:n:")

    foreign = await fake.click(card, approve, fake.bob)
    await fake.wait_for(lambda: ephemeral_texts(foreign), what="bob's refusal")
    assert "Only the person who asked" in ephemeral_texts(foreign)[0]
    assert foreign.first_response_after < 3.0

    click = await fake.click(card, approve, fake.alice)
    await fake.wait_for(lambda: "done: deployed api" in fake.bot_messages(thread_id)[0]["content"],
                        what="the answer after approval")
    decided = fake.find_message(int(card["id"]))
    assert decided["components"] == [] and "Approved" in decided["content"]
    assert f"<@{fake.alice['id']}>" in decided["content"]
    assert click.first_response_after < 3.0 and not ephemeral_texts(click)

    stale = await fake.click(card, deny, fake.alice)  # an old copy of the card, clicked again
    await fake.wait_for(lambda: ephemeral_texts(stale), what="the stale click's answer")
    assert "no longer pending" in ephemeral_texts(stale)[0] or "already" in ephemeral_texts(stale)[0]
    assert len(fake.bot_messages(thread_id)) == 2  # the answer and the card, each posted once


async def test_admin_may_decide_and_anyone_setting(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    agent = await make_agent(tools=[deploy])
    await adapter(agent, DURABOT_APPROVERS="anyone")
    thread_id, card = await _ask_for_deploy(fake, fake_openai)
    _, deny = button_ids(card)
    await fake.click(card, deny, fake.bob)  # "anyone" may decide
    await fake.wait_for(lambda: "Denied" in fake.find_message(int(card["id"]))["content"])
    # Wait for the whole answer: a live edit can show "done:" before the rest of it.
    await fake.wait_for(lambda: "was not run" in fake.bot_messages(thread_id)[0]["content"],
                        what="the answer after the denial")


async def test_button_works_after_adapter_restart(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    agent = await make_agent(tools=[deploy])
    first = await adapter(agent)
    thread_id, card = await _ask_for_deploy(fake, fake_openai)
    await first.kill()

    await adapter(agent)  # a new process: no memory of the card
    approve, _ = button_ids(card)
    click = await fake.click(card, approve, fake.alice)
    await fake.wait_for(lambda: "done: deployed api" in fake.bot_messages(thread_id)[0]["content"],
                        what="the answer delivered by the new adapter")
    assert not ephemeral_texts(click)
    assert fake.find_message(int(card["id"]))["components"] == []
    assert len([m for m in fake.bot_messages(thread_id) if button_ids(m) or "Approved" in m["content"]]) == 1
