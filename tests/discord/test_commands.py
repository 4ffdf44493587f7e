"""/durabot status, cancel (admin rights checked at run time) and runs."""

from __future__ import annotations

import re

from tests.discord.conftest import button_ids, deploy, deploy_script, ephemeral_texts


async def test_slash_commands(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    fake_openai.script = deploy_script  # the run waits for an approval: something to look at and cancel
    agent = await make_agent(tools=[deploy])
    await adapter(agent)
    assert [c["name"] for c in fake.commands[f"guild:{fake.guild_id}"]] == ["durabot"]  # synced to the guild

    question = await fake.user_message("deploy the api")
    thread_id = int(question["id"])
    card = await fake.wait_for(lambda: next((m for m in fake.bot_messages(thread_id) if button_ids(m)), None))

    status = await fake.slash("status", fake.alice, thread_id)
    await fake.wait_for(lambda: ephemeral_texts(status), what="the status")
    assert "awaiting approval" in ephemeral_texts(status)[0] and "`deploy`" in ephemeral_texts(status)[0]
    assert re.search(r"\*\*Context:\*\* [\d,]+ of [\d,]+ tokens", ephemeral_texts(status)[0])

    runs = await fake.slash("runs", fake.bob, fake.channel_id)
    await fake.wait_for(lambda: ephemeral_texts(runs), what="the runs")
    assert f"<#{thread_id}>" in ephemeral_texts(runs)[0]

    outside = await fake.slash("status", fake.alice, fake.channel_id)
    await fake.wait_for(lambda: ephemeral_texts(outside))
    assert "inside a durabot conversation thread" in ephemeral_texts(outside)[0]

    refused = await fake.slash("cancel", fake.alice, thread_id)  # not an admin
    await fake.wait_for(lambda: ephemeral_texts(refused))
    assert "Only admins" in ephemeral_texts(refused)[0]
    assert (await agent.status(f"discord:{fake.guild_id}:{fake.channel_id}:{thread_id}")).state == "awaiting_approval"

    cancel = await fake.slash("cancel", fake.admin, thread_id)  # Manage Server
    await fake.wait_for(lambda: ephemeral_texts(cancel))
    assert "Cancelling" in ephemeral_texts(cancel)[0]
    notice = await fake.wait_for(lambda: "Run cancelled" in fake.bot_messages(thread_id)[0]["content"]
                                 and fake.bot_messages(thread_id)[0]["content"], what="the cancelled notice")
    assert f"<@{fake.admin['id']}>" in notice
    await fake.wait_for(lambda: "Cancelled" in fake.find_message(int(card["id"]))["content"])
    assert fake.find_message(int(card["id"]))["components"] == []
    for it in (status, runs, outside, refused, cancel):
        assert it.first_response_after < 3.0


async def test_cancel_by_configured_admin(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    fake_openai.script = deploy_script
    agent = await make_agent(tools=[deploy])
    await adapter(agent, DURABOT_ADMINS=fake.bob["id"])
    question = await fake.user_message("deploy the api")
    thread_id = int(question["id"])
    await fake.wait_for(lambda: any(button_ids(m) for m in fake.bot_messages(thread_id)))
    cancel = await fake.slash("cancel", fake.bob, thread_id)
    await fake.wait_for(lambda: ephemeral_texts(cancel))
    assert "Cancelling" in ephemeral_texts(cancel)[0]
    await fake.wait_for(lambda: "Run cancelled" in fake.bot_messages(thread_id)[0]["content"])
