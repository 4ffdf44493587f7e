"""Discord: decisions and cancels leave audit records; /durabot audit is for admins only."""

from __future__ import annotations

from tests.discord.conftest import button_ids, deploy, deploy_script, ephemeral_texts


async def test_audit_trail_in_discord(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    fake_openai.script = deploy_script
    agent = await make_agent(tools=[deploy])
    await adapter(agent)
    question = await fake.user_message("deploy the api")
    thread_id = int(question["id"])
    card = await fake.wait_for(lambda: next((m for m in fake.bot_messages(thread_id) if button_ids(m)), None))
    approve, _ = button_ids(card)
    await fake.click(card, approve, fake.alice)
    await fake.wait_for(lambda: "done: deployed api" in fake.bot_messages(thread_id)[0]["content"])

    second = await fake.user_message("deploy again", channel_id=thread_id, mention=False)
    assert second
    await fake.wait_for(lambda: len([m for m in fake.bot_messages(thread_id) if button_ids(m)]) == 1)
    cancel = await fake.slash("cancel", fake.admin, thread_id)
    await fake.wait_for(lambda: ephemeral_texts(cancel))

    refused = await fake.slash("audit", fake.bob, thread_id)
    await fake.wait_for(lambda: ephemeral_texts(refused))
    assert "Only admins" in ephemeral_texts(refused)[0]
    trail = await fake.slash("audit", fake.admin, thread_id)
    await fake.wait_for(lambda: ephemeral_texts(trail), what="the audit trail")
    rows = [line for line in ephemeral_texts(trail)[0].splitlines() if line.startswith("•")]
    assert len(rows) == 2, rows
    assert f"<@{fake.admin['id']}>" in rows[0] and "cancel: cancel → cancel requested" in rows[0]
    assert f"<@{fake.alice['id']}>" in rows[1] and "approval: deploy (arguments" in rows[1]
    assert rows[1].endswith(f"→ approved · <#{thread_id}>")
    alice_only = await fake.slash("audit", fake.admin, thread_id, query=f"<@{fake.alice['id']}> deploy 1h")
    await fake.wait_for(lambda: ephemeral_texts(alice_only))
    assert ephemeral_texts(alice_only)[0].count("•") == 1
