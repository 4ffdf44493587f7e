"""Discord: a profile's admins are admins in that profile's channels for /durabot's admin commands
(cancel, audit, others' usage) and the budget override, and nowhere else; members stay refused."""

from __future__ import annotations

from agent_core.profiles import load_profiles
from bots.core.budget_gate import scope_for
from tests.discord.conftest import all_custom_ids, button_ids, deploy, ephemeral_texts
from tests.fakes.openai_server import Reply


def script(body):
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text=f"done: {last['content']}")
    if "deploy" in (last.get("content") or ""):
        return Reply(tool_calls=[("deploy", {"service": "api"})])
    return Reply(text="the answer")


async def answer(fake, interaction) -> str:
    await fake.wait_for(lambda: ephemeral_texts(interaction), what="the ephemeral answer")
    return ephemeral_texts(interaction)[0]


async def test_profile_admins_in_their_channels_only(make_agent, fake_openai, fake_discord, adapter, tmp_path):
    fake = fake_discord
    fake_openai.script = script
    other_guild, other_channel = fake.add_guild()  # a channel of the default profile
    lead = fake.bob  # no Manage Server, not in DURABOT_ADMINS
    path = tmp_path / "profiles.toml"
    path.write_text(f'default = "general"\n[profiles.general]\n'
                    f'[profiles.team]\nadmins = ["{lead["id"]}"]\ntokens_per_user_per_day = 100\n'
                    f'discord_channels = ["{fake.channel_id}"]\n')
    agent = await make_agent(tools=[deploy], profiles=load_profiles(str(path)))
    await adapter(agent)
    ours = int((await fake.user_message("deploy the api"))["id"])
    theirs = int((await fake.user_message("deploy the api", channel_id=other_channel))["id"])
    for thread in (ours, theirs):
        await fake.wait_for(lambda: any(button_ids(m) for m in fake.bot_messages(thread)), what="a card")

    # cancel: the lead in the team's thread; not in the other guild's; a member nowhere
    assert "Only admins" in await answer(fake, await fake.slash("cancel", lead, theirs))
    assert "Only admins" in await answer(fake, await fake.slash("cancel", fake.alice, ours))
    assert "Cancelling" in await answer(fake, await fake.slash("cancel", lead, ours))
    assert (await agent.status(f"discord:{other_guild}:{other_channel}:{theirs}")).state == "awaiting_approval"

    # audit: the lead reads the team channel's trail, not the other channel's; a member reads none
    trail = await answer(fake, await fake.slash("audit", lead, ours))
    rows = [line for line in trail.splitlines() if line.startswith("•")]
    assert len(rows) == 1 and f"<@{lead['id']}>" in rows[0] and "cancel: cancel → cancel requested" in rows[0]
    assert "Only admins" in await answer(fake, await fake.slash("audit", lead, theirs))
    assert "Only admins" in await answer(fake, await fake.slash("audit", lead, ours, query=f"<#{other_channel}>"))
    assert "Only admins" in await answer(fake, await fake.slash("audit", fake.alice, ours))

    # others' usage: the lead in the team's thread, not in the other one; a member not at all
    mention = f"<@{fake.alice['id']}>"
    assert mention in await answer(fake, await fake.slash("usage", lead, ours, query=mention))
    assert "Only admins" in await answer(fake, await fake.slash("usage", lead, theirs, query=mention))
    assert "Only admins" in await answer(fake, await fake.slash("usage", fake.alice, ours, query=f"<@{lead['id']}>"))

    # the budget override of a message held in the team's channel
    await agent.budgets.charge(scope_for(f"discord:{fake.guild_id}:{fake.channel_id}:1", fake.alice["id"], 100, None),
                               100, "seed")
    held = int((await fake.user_message("what now?"))["id"])
    card = await fake.wait_for(lambda: next((m for m in fake.bot_messages(held)
                                             if any(i.startswith("db:b:") for i in all_custom_ids(m))), None))
    button = next(i for i in all_custom_ids(card) if i.startswith("db:b:"))
    assert "Only admins" in await answer(fake, await fake.click(card, button, fake.alice))
    assert "Let through" in await answer(fake, await fake.click(card, button, lead))
    await fake.wait_for(lambda: any("the answer" in m["content"] for m in fake.bot_messages(held)))
