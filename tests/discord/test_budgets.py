"""Discord: a message past its channel's budget is answered with "Ask an admin to allow it"."""

from __future__ import annotations

from agent_core.profiles import load_profiles
from bots.core.budget_gate import scope_for
from tests.discord.conftest import all_custom_ids, deploy, ephemeral_texts
from tests.fakes.openai_server import Reply


async def test_budget_refusal_and_admin_override(make_agent, fake_openai, fake_discord, adapter, tmp_path):
    fake = fake_discord
    fake_openai.script = lambda body: Reply(text="the answer")
    path = tmp_path / "profiles.toml"
    path.write_text(f"[profiles.small]\ntokens_per_channel_per_day = 50\ndiscord_channels = ['{fake.channel_id}']\n")
    agent = await make_agent(tools=[deploy], profiles=load_profiles(str(path)))
    await adapter(agent)
    await agent.budgets.charge(scope_for(f"discord:{fake.guild_id}:{fake.channel_id}:1", "0", None, 50), 50, "seed")
    question = await fake.user_message("what now?")
    thread_id = int(question["id"])

    def refusal():
        return next((m for m in fake.bot_messages(thread_id) if any(i.startswith("db:b:") for i in all_custom_ids(m))),
                    None)

    card = await fake.wait_for(refusal, what="the budget refusal")
    assert "token budget for today is used up" in card["content"] and not fake_openai.requests
    button = next(i for i in all_custom_ids(card) if i.startswith("db:b:"))
    refused = await fake.click(card, button, fake.bob)
    await fake.wait_for(lambda: ephemeral_texts(refused))
    assert "Only admins" in ephemeral_texts(refused)[0]
    allowed = await fake.click(card, button, fake.admin)
    await fake.wait_for(lambda: ephemeral_texts(allowed))
    assert "Let through" in ephemeral_texts(allowed)[0]
    await fake.wait_for(lambda: any("the answer" in m["content"] for m in fake.bot_messages(thread_id)),
                        what="the answer after the override")


async def test_usage_in_a_thread(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    fake_openai.script = lambda body: Reply(text="the answer", usage=(20, 5))
    agent = await make_agent(tools=[deploy])
    await adapter(agent)
    question = await fake.user_message("hello")
    thread_id = int(question["id"])
    await fake.wait_for(lambda: any("the answer" in m["content"] for m in fake.bot_messages(thread_id)))
    usage = await fake.slash("usage", fake.alice, thread_id)
    await fake.wait_for(lambda: ephemeral_texts(usage))
    text = ephemeral_texts(usage)[0]
    assert "this thread: 25 tokens in 1 turn(s)" in text and f"<#{fake.channel_id}>: today 26 tokens" in text
    other = await fake.slash("usage", fake.bob, thread_id, query=f"<@{fake.alice['id']}>")
    await fake.wait_for(lambda: ephemeral_texts(other))
    assert "Only admins" in ephemeral_texts(other)[0]
