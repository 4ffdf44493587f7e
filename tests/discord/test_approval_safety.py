"""Approvals that cannot be misdirected or silently lost: a card's buttons act only in the card's own
thread, admin rights count in the conversation's guild, and cards fit Discord's 2,000 characters
however their arguments render."""

from __future__ import annotations

import copy
import json

from agent_core import ToolContext, tool
from tests.discord.conftest import button_ids, deploy, deploy_script, ephemeral_texts
from tests.fakes.discord_server import MANAGE_GUILD, MEMBER_PERMISSIONS
from tests.fakes.openai_server import Reply

# 10,000 characters of which most are backticks: the fence guard makes every three of them four.
BIG = ("`" * 27 + "<&>") * 333 + "`" * 10


@tool(requires_approval=True)
async def release(service: str, notes: str, ctx: ToolContext) -> str:
    """Release a service with notes."""
    return f"released {service} ({len(notes)} characters of notes)"


def release_script(body: dict) -> Reply:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text=f"done: {last['content']}")
    return Reply(tool_calls=[("release", {"service": "api", "notes": BIG})])


def _card(fake, thread_id):
    cards = [m for m in fake.bot_messages(thread_id) if button_ids(m)]
    return copy.deepcopy(cards[0]) if cards else None


async def test_a_card_copied_to_another_guild_or_channel_decides_nothing(make_agent, fake_openai, fake_discord,
                                                                       adapter):
    fake = fake_discord
    fake_openai.script = deploy_script
    agent = await make_agent(tools=[deploy])
    await adapter(agent)
    question = await fake.user_message("deploy the api")
    thread_id = int(question["id"])
    card = await fake.wait_for(lambda: _card(fake, thread_id), what="the approval card")
    approve, _ = button_ids(card)
    conv = f"discord:{fake.guild_id}:{fake.channel_id}:{thread_id}"

    # Bob manages a server of his own and clicks a copy of the card there.
    elsewhere = await fake.click(card, approve, fake.bob, channel_id=fake.foreign_channel(),
                                 permissions=MEMBER_PERMISSIONS | MANAGE_GUILD)
    await fake.wait_for(lambda: ephemeral_texts(elsewhere), what="the refusal in the other guild")
    assert "belongs to another conversation" in ephemeral_texts(elsewhere)[0]
    # The requester clicks a copy of it in another channel of the same guild.
    other_channel = await fake.click(card, approve, fake.alice, channel_id=fake.channel_id)
    await fake.wait_for(lambda: ephemeral_texts(other_channel), what="the refusal in the other channel")
    assert "belongs to another conversation" in ephemeral_texts(other_channel)[0]
    assert (await agent.status(conv)).state == "awaiting_approval"
    assert fake.find_message(int(card["id"]))["components"]  # the card still has its buttons

    # In the thread, an admin of this guild (Manage Server here) may decide though not the requester.
    await fake.click(card, approve, fake.admin)
    await fake.wait_for(lambda: "done: deployed api" in fake.bot_messages(thread_id)[0]["content"],
                        what="the answer after the admin's approval")
    assert f"Approved** by <@{fake.admin['id']}>" in fake.find_message(int(card["id"]))["content"]


async def test_long_arguments_make_a_valid_card_and_show_all_sends_them_whole(make_agent, fake_openai,
                                                                              fake_discord, adapter):
    fake = fake_discord
    fake_openai.script = release_script
    agent = await make_agent(tools=[release])
    await adapter(agent)
    question = await fake.user_message("release the api")
    thread_id = int(question["id"])
    card = await fake.wait_for(lambda: _card(fake, thread_id), what="the approval card")
    posts = fake.calls_to("POST", f"/channels/{thread_id}/messages")
    assert posts and all(c.status == 200 and len(c.body.get("content") or "") <= 2000 for c in posts)
    assert len(card["content"]) <= 2000 and "more characters" in card["content"]
    approve, deny, show = button_ids(card)
    assert show.startswith("db:s:") and len(show) <= 100

    shown = await fake.click(card, show, fake.bob)
    await fake.wait_for(lambda: shown.followups, what="the arguments")
    answer = shown.followups[0]
    assert answer["flags"] & 64  # ephemeral: only bob sees it
    (text,) = answer["_files"].values()
    assert json.loads(text) == {"service": "api", "notes": BIG}

    await fake.click(card, approve, fake.alice)
    await fake.wait_for(lambda: "done: released api" in fake.bot_messages(thread_id)[0]["content"],
                        what="the answer after approval")
    decided = fake.find_message(int(card["id"]))
    assert "Approved" in decided["content"] and len(decided["content"]) <= 2000
    assert all(len(c.body.get("content") or "") <= 2000 for c in fake.calls if isinstance(c.body, dict))
    assert not [c for c in fake.calls if c.status == 400]
