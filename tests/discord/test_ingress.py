"""Nothing a user sends is lost without telling them: submit before the placeholder, the placeholder
found again after a restart (or the answer posted anew when there is none), its Stop button, a refused
thread, a bare mention."""

from __future__ import annotations

import logging

from workers.settings import Settings
from bots.discord.app import CARDS, DiscordAdapter
from bots.discord.ids import ConversationRef
from bots.discord.ingress import KNOWN_THREADS
from bots.discord.placeholder import parse_stop_custom_id, stop_custom_id
from bots.discord.ratelimit import CHANNELS, ChannelLimiter
from tests.discord.conftest import button_ids, deploy, deploy_script, ephemeral_texts, stop_ids
from tests.fakes.openai_server import Reply
from tests.discord.test_operations import eventually

SNOW = 1234567890123456789


def conv_of(fake, thread_id: int) -> str:
    return f"discord:{fake.guild_id}:{fake.channel_id}:{thread_id}"


async def test_refused_placeholder_still_gets_the_answer_once(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    agent = await make_agent()
    await adapter(agent)
    fake.refuse("POST", "/messages")  # the next message create: the placeholder
    question = await fake.user_message("are you there?")
    thread_id = int(question["id"])
    answer = await fake.wait_for(lambda: next((m for m in fake.bot_messages(thread_id)
                                               if m["content"] == "echo: are you there?"), None),
                                 what="the answer as a new message")
    assert [c.status for c in fake.calls_to("POST", "/messages") if c.path.endswith("/messages")][0] == 403
    assert [m["content"] for m in fake.bot_messages(thread_id)] == ["echo: are you there?"]
    assert answer["components"] == []
    assert len(fake_openai.requests) == 1


async def test_restart_without_placeholder_posts_the_answer_once(make_agent, fake_openai, fake_discord, adapter):
    """The adapter dies after the submit and before any placeholder: the new one posts the answer."""
    fake = fake_discord
    fake_openai.script = lambda body: Reply(text="late but complete", ttft=1.0)
    agent = await make_agent()
    first = await adapter(agent)
    fake.refuse("POST", "/messages")
    question = await fake.user_message("slow question")
    thread_id = int(question["id"])
    await fake.wait_for(lambda: [c for c in fake.calls if c.status == 403], what="the refused placeholder")
    await first.kill()

    await agent.get_run(conv_of(fake, thread_id), str(question["id"])).result(timeout=20)
    assert fake.bot_messages(thread_id) == []  # finished while no adapter ran

    await adapter(agent)
    await fake.wait_for(lambda: fake.bot_messages(thread_id), what="the answer from the new adapter")
    assert [m["content"] for m in fake.bot_messages(thread_id)] == ["late but complete"]
    posted = [c for c in fake.calls_to("POST", f"/channels/{thread_id}/messages") if c.status == 200]
    assert len(posted) == 1


async def test_restart_fills_the_placeholder_found_in_the_thread(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    text = " ".join(f"word{i}" for i in range(30))
    fake_openai.script = lambda body: Reply(text=text, token_delay=0.1)
    agent = await make_agent()
    first = await adapter(agent)
    question = await fake.user_message("count slowly")
    thread_id = int(question["id"])
    await fake.wait_for(lambda: fake.bot_messages(thread_id)
                        and fake.bot_messages(thread_id)[0]["content"].startswith("word0"), what="streamed text")
    await first.kill()
    placeholder = fake.bot_messages(thread_id)[0]
    assert len(stop_ids(placeholder)) == 1
    await agent.get_run(conv_of(fake, thread_id), str(question["id"])).result(timeout=20)
    for i in range(120):  # a busy thread: the placeholder is found however much came after it
        await fake.user_message(f"chatter {i}", author=fake.other_bot, channel_id=thread_id, mention=False)

    await adapter(agent)
    await fake.wait_for(lambda: fake.find_message(int(placeholder["id"]))["content"] == text, what="the final text")
    done = fake.find_message(int(placeholder["id"]))
    assert done["components"] == []  # the Stop button went with the final text
    assert [m["content"] for m in fake.bot_messages(thread_id)] == [text]


async def test_stop_button_cancels_for_the_requester_only(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    fake_openai.script = deploy_script
    agent = await make_agent(tools=[deploy])
    await adapter(agent)
    question = await fake.user_message("deploy the api")
    thread_id = int(question["id"])
    card = await fake.wait_for(lambda: next((m for m in fake.bot_messages(thread_id) if button_ids(m)), None),
                               what="the approval card")
    placeholder = next(m for m in fake.bot_messages(thread_id) if stop_ids(m))
    (stop,) = stop_ids(placeholder)
    assert len(stop) <= 100

    foreign = await fake.click(placeholder, stop, fake.bob)
    await fake.wait_for(lambda: ephemeral_texts(foreign), what="bob's refusal")
    assert "Only the person who asked or an admin" in ephemeral_texts(foreign)[0]

    await fake.click(placeholder, stop, fake.alice)
    await fake.wait_for(lambda: "Run cancelled" in fake.find_message(int(placeholder["id"]))["content"],
                        what="the cancelled notice in the placeholder")
    assert fake.find_message(int(placeholder["id"]))["components"] == []
    await fake.wait_for(lambda: "Cancelled" in fake.find_message(int(card["id"]))["content"], what="the card closed")
    assert len(fake_openai.requests) == 1  # the deploy never ran


async def test_missing_thread_permission_is_explained(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    agent = await make_agent()
    await adapter(agent)
    fake.refuse("POST", "/threads")
    question = await fake.user_message("hello?")
    told = await fake.wait_for(lambda: fake.bot_messages(fake.channel_id), what="the explanation in the channel")
    assert "Create Public Threads" in told[0]["content"]
    assert str(told[0]["message_reference"]["message_id"]) == question["id"]
    assert fake.threads() == [] and fake_openai.requests == []


async def test_missing_thread_and_send_permissions_are_logged(make_agent, fake_openai, fake_discord, adapter,
                                                              caplog):
    fake = fake_discord
    agent = await make_agent()
    await adapter(agent)
    fake.refuse("POST", "/threads")
    fake.refuse("POST", "/messages")
    question = await fake.user_message("hello?")

    def warned() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and r.name == "bots.discord.ingress" and "cannot answer" in r.getMessage()]

    await eventually(warned)
    assert question["id"] in warned()[0] and str(fake.channel_id) in warned()[0]
    assert str(fake.guild_id) in warned()[0] and "403" in warned()[0]
    assert len([c for c in fake.calls if c.status == 403]) == 2
    assert fake.messages[fake.channel_id] == [question] and fake_openai.requests == []


async def test_bare_mentions_get_a_hint_and_start_no_turn(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    agent = await make_agent()
    await adapter(agent)
    await fake.user_message("")
    await fake.user_message("  ?! ")
    await fake.wait_for(lambda: len(fake.bot_messages(fake.channel_id)) == 2, what="two hints")
    # In a thread the bot owns, and in a DM, too.
    question = await fake.user_message("first question")
    thread_id = int(question["id"])
    await fake.wait_for(lambda: any(m["content"] == "echo: first question" for m in fake.bot_messages(thread_id)))
    await fake.user_message("...", channel_id=thread_id)
    dm = fake.open_dm(fake.alice)
    await fake.user_message("", channel_id=dm)
    await fake.wait_for(lambda: len(fake.bot_messages(thread_id)) == 2 and fake.bot_messages(dm), what="hints")
    hints = fake.bot_messages(fake.channel_id) + fake.bot_messages(thread_id)[1:] + fake.bot_messages(dm)
    assert all(h["content"].startswith("Ask me something, e.g. <@") for h in hints)
    assert len(fake.threads()) == 1
    assert len(fake_openai.requests) == 1  # only the real question reached the model


async def test_adapter_maps_are_bounded(make_agent, fake_discord):
    agent = await make_agent()
    a = DiscordAdapter(Settings.load(env=fake_discord.env(), dotenv=None), agent)
    for i in range(CARDS + 10):
        a.cards[("c", str(i))] = [i, "card"]
    assert len(a.cards) == CARDS
    for i in range(KNOWN_THREADS + 10):
        a.ingress.known_threads.add(i)
    assert len(a.ingress.known_threads) == KNOWN_THREADS
    limiter = ChannelLimiter(per=1000)
    for i in range(CHANNELS + 10):
        await limiter.acquire(i)
    assert len(limiter._channels) == CHANNELS


async def test_failed_thread_creation_is_explained(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    agent = await make_agent()
    await adapter(agent)
    fake.refuse("POST", "/threads", status=400, code=50035)
    await fake.user_message("hello?")
    told = await fake.wait_for(lambda: fake.bot_messages(fake.channel_id), what="the explanation in the channel")
    assert "mention me again" in told[0]["content"]
    assert fake.threads() == [] and fake_openai.requests == []


def test_stop_custom_id_round_trip():
    ref = ConversationRef(str(SNOW), str(SNOW + 1), str(SNOW + 2))
    cid = stop_custom_id(ref, str(SNOW + 3), str(SNOW + 4))
    assert len(cid) <= 100 and parse_stop_custom_id(cid) == (ref, str(SNOW + 3), str(SNOW + 4))
    dm = ConversationRef("@me", str(SNOW), str(SNOW))
    assert parse_stop_custom_id(stop_custom_id(dm, str(SNOW), "1")) == (dm, str(SNOW), "1")
    assert parse_stop_custom_id("db:y:1.2.3:a1") is None
