"""Messages in, streamed replies out: mention → thread → streamed answer, continuation, DMs, context."""

from __future__ import annotations

from tests.fakes.openai_server import Reply, last_user_text

WORDS = "Durable execution means the work survives crashes of any process."


async def test_mention_opens_thread_and_streams_the_answer(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    fake_openai.script = lambda body: Reply(text=WORDS, token_delay=0.25)
    agent = await make_agent()
    await adapter(agent)

    question = await fake.user_message("What is durable execution?")
    thread_id = int(question["id"])  # a thread opened on a message takes its id
    await fake.wait_for(lambda: thread_id in fake.channels, what="the thread")
    assert fake.channels[thread_id]["name"] == "What is durable execution?"
    assert fake.channels[thread_id]["owner_id"] == fake.bot["id"]

    await fake.wait_for(lambda: any(m["content"] == WORDS for m in fake.bot_messages(thread_id)),
                        what="the final answer")
    replies = fake.bot_messages(thread_id)
    assert [m["content"] for m in replies] == [WORDS]  # one message: the placeholder, edited

    edits = fake.calls_to("PATCH", f"/channels/{thread_id}/messages/")
    shown = [c.body["content"] for c in edits]
    assert len(shown) >= 3, shown  # streamed: partial texts before the final one
    assert all(WORDS.startswith(s) for s in shown)
    live = edits[:-1]  # the last edit may be the delivery's, right after a live one
    gaps = [b.at - a.at for a, b in zip(live, live[1:])]
    assert all(g >= 0.9 for g in gaps), gaps  # at most about one live edit per second
    assert not [c for c in fake.calls if c.status == 429]
    assert thread_id in fake.typing
    assert last_user_text(fake_openai.requests[-1]) == "What is durable execution?"
    conv = f"discord:{fake.guild_id}:{fake.channel_id}:{thread_id}"
    assert (await agent.status(conv)) is not None


async def test_thread_continues_without_mention_and_ignores_bots(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    agent = await make_agent()
    await adapter(agent)
    first = await fake.user_message("my name is Ada")
    thread_id = int(first["id"])
    await fake.wait_for(lambda: any(m["content"] == "echo: my name is Ada" for m in fake.bot_messages(thread_id)))

    await fake.user_message("a bot talking", author=fake.other_bot, channel_id=thread_id, mention=False)
    await fake.user_message("what is my name?", channel_id=thread_id, mention=False)
    await fake.wait_for(lambda: any(m["content"] == "echo: what is my name?" for m in fake.bot_messages(thread_id)))
    assert [m["content"] for m in fake.bot_messages(thread_id)] == ["echo: my name is Ada", "echo: what is my name?"]
    sent = fake_openai.requests[-1]["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == ["my name is Ada", "what is my name?"]
    assert len(fake_openai.requests) == 2  # the other bot got no answer

    # A message in the channel without a mention is not for the bot.
    await fake.user_message("just chatting", mention=False)
    await fake.user_message("ping", channel_id=thread_id, mention=False)
    await fake.wait_for(lambda: len(fake.bot_messages(thread_id)) == 3
                        and fake.bot_messages(thread_id)[-1]["content"] == "echo: ping")
    assert len(fake.threads()) == 1


async def test_direct_messages(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    agent = await make_agent()
    await adapter(agent)
    dm = fake.open_dm(fake.alice)
    await fake.user_message("hello in private", channel_id=dm, mention=False)
    await fake.wait_for(lambda: any(m["content"] == "echo: hello in private" for m in fake.bot_messages(dm)))
    assert (await agent.status(f"discord:@me:{dm}:{dm}")) is not None


async def test_conversation_started_in_a_thread_gets_its_earlier_messages(
        make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    agent = await make_agent()
    await adapter(agent)
    thread_id = await fake.user_thread("incident 42", fake.bob)
    await fake.user_message("the database is down", author=fake.bob, channel_id=thread_id, mention=False)
    await fake.user_message("x" * 9000, author=fake.bob, channel_id=thread_id, mention=False)  # too big
    await fake.user_message("since 10:00", author=fake.bob, channel_id=thread_id, mention=False)
    await fake.user_message("summarise please", channel_id=thread_id)
    await fake.wait_for(lambda: any(m["content"] == "echo: summarise please" for m in fake.bot_messages(thread_id)))
    sent = [m["content"] for m in fake_openai.requests[-1]["messages"] if m["role"] == "user"]
    assert sent == ["since 10:00", "summarise please"]  # bounded: the oversized message and older ones are out
    assert len(fake_openai.requests) == 1  # the earlier messages themselves were not answered


async def test_a_thread_someone_else_opened_goes_on_without_a_mention_after_a_restart(
        make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    agent = await make_agent()
    first = await adapter(agent)
    thread_id = await fake.user_thread("incident 7", fake.bob)
    await fake.user_message("is the api up?", channel_id=thread_id)
    await fake.wait_for(lambda: any(m["content"] == "echo: is the api up?" for m in fake.bot_messages(thread_id)))
    await first.kill()
    await adapter(agent)
    await fake.user_message("and the database?", channel_id=thread_id, mention=False)
    await fake.wait_for(lambda: any(m["content"] == "echo: and the database?" for m in fake.bot_messages(thread_id)),
                        what="the answer to a reply without a mention")
    users = [m["content"] for m in fake_openai.requests[-1]["messages"] if m["role"] == "user"]
    assert users == ["is the api up?", "and the database?"]
