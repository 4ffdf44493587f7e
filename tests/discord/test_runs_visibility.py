"""/durabot runs shows a member the conversations of the channel they are in, admins the whole guild,
a DM its own conversation, and nobody another guild's."""

from __future__ import annotations

import asyncio
import time

from tests.discord.conftest import button_ids, deploy, deploy_script, ephemeral_texts


async def runs_text(fake, user, channel_id) -> str:
    it = await fake.slash("runs", user, channel_id)
    await fake.wait_for(lambda: ephemeral_texts(it), what="the runs answer")
    return ephemeral_texts(it)[0]


async def test_runs_member_channel_admin_guild_dm_own(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    fake_openai.script = deploy_script
    agent = await make_agent(tools=[deploy])
    await adapter(agent)

    question = await fake.user_message("deploy the api")  # a conversation thread in #general
    thread = int(question["id"])
    await fake.wait_for(lambda: any(button_ids(m) for m in fake.bot_messages(thread)))
    # A thread of a private channel alice is not in, bob's DM with the bot, and a conversation of
    # another guild whose channel has the same id as #general.
    private_channel, private_thread = fake.snowflake(), fake.snowflake()
    dm = fake.open_dm(fake.bob)
    other_guild, other_thread = fake.snowflake(), fake.snowflake()
    await agent.run_async("deploy the api", f"discord:{fake.guild_id}:{private_channel}:{private_thread}")
    await agent.run_async("deploy the api", f"discord:@me:{dm}:{dm}", user=fake.bob["id"])
    await agent.run_async("deploy the api", f"discord:{other_guild}:{fake.channel_id}:{other_thread}")

    deadline = time.monotonic() + 20
    while True:  # the visibility store lags a little behind new workflows
        admin_view = await runs_text(fake, fake.admin, fake.channel_id)  # Manage Server
        if f"<#{thread}>" in admin_view and f"<#{private_thread}>" in admin_view:
            break
        assert time.monotonic() < deadline, admin_view
        await asyncio.sleep(0.1)  # poll interval

    member_view = await runs_text(fake, fake.alice, fake.channel_id)
    assert f"<#{thread}>" in member_view and "waiting for approval of deploy" in member_view
    assert f"<#{private_thread}>" not in member_view and str(dm) not in member_view
    assert f"<#{other_thread}>" not in member_view
    in_thread = await runs_text(fake, fake.alice, thread)  # inside the conversation thread: its channel's
    assert f"<#{thread}>" in in_thread and f"<#{private_thread}>" not in in_thread

    assert str(dm) not in admin_view and f"<#{other_thread}>" not in admin_view

    own = await runs_text(fake, fake.bob, dm)  # in a DM: that DM's conversation only
    assert f"discord:@me:{dm}:{dm}" in own and f"<#{thread}>" not in own and f"<#{private_thread}>" not in own

    other_dm = fake.open_dm(fake.alice)
    assert await runs_text(fake, fake.alice, other_dm) == "No durabot conversations are running here."
