"""Discord: Always allow in this thread, the allowance in /durabot status, and /durabot revoke."""

from __future__ import annotations

from tests.discord.conftest import all_custom_ids, button_ids, deploy, deploy_script, ephemeral_texts


def allow_id(message: dict) -> str | None:
    return next((i for i in all_custom_ids(message) if i.startswith("db:a:")), None)


async def test_allow_in_thread_status_and_revoke(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    fake_openai.script = deploy_script
    agent = await make_agent(tools=[deploy])
    await adapter(agent)
    question = await fake.user_message("deploy the api")
    thread_id = int(question["id"])
    card = await fake.wait_for(lambda: next((m for m in fake.bot_messages(thread_id) if allow_id(m)), None),
                               what="the card with its thread-wide button")
    labels = [c["label"] for row in card["components"] for c in row["components"]]
    assert labels[:3] == ["Approve once", "Always allow in this thread", "Deny"]
    click = await fake.click(card, allow_id(card), fake.alice)
    await fake.wait_for(lambda: "done: deployed api" in fake.bot_messages(thread_id)[0]["content"])
    assert "Allowed in this thread" in fake.find_message(int(card["id"]))["content"]
    assert not ephemeral_texts(click)

    status = await fake.slash("status", fake.bob, thread_id)
    await fake.wait_for(lambda: ephemeral_texts(status), what="the status")
    assert f"**Allowed in this thread:** `deploy` (by <@{fake.alice['id']}>)" in ephemeral_texts(status)[0]

    revoked = await fake.slash("revoke", fake.bob, thread_id, tool="deploy")
    await fake.wait_for(lambda: ephemeral_texts(revoked), what="the revoke")
    assert "needs approval again" in ephemeral_texts(revoked)[0]
    again = await fake.slash("revoke", fake.bob, thread_id, tool="deploy")
    await fake.wait_for(lambda: ephemeral_texts(again))
    assert "is not allowed in this thread" in ephemeral_texts(again)[0]
    outside = await fake.slash("revoke", fake.bob, fake.channel_id, tool="deploy")
    await fake.wait_for(lambda: ephemeral_texts(outside))
    assert "inside a durabot conversation thread" in ephemeral_texts(outside)[0]
    conv = f"discord:{fake.guild_id}:{fake.channel_id}:{thread_id}"
    assert (await agent.status(conv)).allowances == []
