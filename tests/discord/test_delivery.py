"""Long answers, rate limits, a killed adapter, bad gateway payloads, a missing privileged intent."""

from __future__ import annotations

from tests.fakes.openai_server import Reply


def long_answer() -> str:
    prose = "\n\n".join(f"Paragraph {i}: " + "words and more words " * 12 for i in range(6))
    code = "```python\n" + "\n".join(f"print('line {i}')  # explain {i}" for i in range(90)) + "\n```"
    return f"{prose}\n\n{code}\n\nThe end."


def tokens(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def _fences_balanced(content: str) -> bool:
    return sum(1 for line in content.split("\n") if line.strip().startswith("```")) % 2 == 0


async def test_long_answer_splits_with_code_fences(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    answer = long_answer()
    assert len(answer) > 4000
    fake_openai.script = lambda body: Reply(text=answer, tokens=tokens(answer, 150), token_delay=0.08)
    agent = await make_agent()
    await adapter(agent)
    question = await fake.user_message("explain with code")
    thread_id = int(question["id"])
    # The model alone streams for 12 s; the bound leaves room for a machine busy with other work.
    await fake.wait_for(lambda: any("The end." in m["content"] for m in fake.bot_messages(thread_id)),
                        timeout=60, what="the last part")
    parts = [m["content"] for m in fake.bot_messages(thread_id)]
    assert len(parts) >= 3
    assert all(len(p) <= 2000 and _fences_balanced(p) for p in parts)
    text = "\n".join(parts)
    assert all(f"print('line {i}')" in text for i in range(90))
    written = [c.body["content"] for c in fake.calls
               if c.channel == thread_id and c.method in ("POST", "PATCH") and c.body]
    assert all(len(w) <= 2000 and _fences_balanced(w) for w in written)  # intermediate edits too
    assert not [c for c in fake.calls if c.status == 429]  # paced inside the channel bucket
    assert len(parts) == len({m["id"] for m in fake.bot_messages(thread_id)})


async def test_429_on_edits_loses_no_text(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    fake_openai.script = lambda body: Reply(text=text, token_delay=0.15)
    agent = await make_agent()
    await adapter(agent)
    fake.fail_edits = 3
    question = await fake.user_message("greek letters")
    thread_id = int(question["id"])
    await fake.wait_for(lambda: fake.bot_messages(thread_id) and fake.bot_messages(thread_id)[0]["content"] == text,
                        what="the whole text despite 429s")
    assert len([c for c in fake.calls if c.status == 429]) == 3
    assert len(fake.bot_messages(thread_id)) == 1


async def test_adapter_killed_mid_stream_delivers_once(make_agent, fake_openai, fake_discord, adapter):
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
    shown_at_kill = fake.bot_messages(thread_id)[0]["content"]
    assert shown_at_kill != text

    conv = f"discord:{fake.guild_id}:{fake.channel_id}:{thread_id}"
    handle = agent.get_run(conv, str(question["id"]))
    await handle.result(timeout=20)  # the turn finishes while no adapter runs
    assert fake.bot_messages(thread_id)[0]["content"] == shown_at_kill

    await adapter(agent)
    await fake.wait_for(lambda: fake.bot_messages(thread_id)[0]["content"] == text, what="the final text")
    assert [m["content"] for m in fake.bot_messages(thread_id)] == [text]  # exactly once, in the placeholder


async def test_malformed_gateway_payloads_are_survived(make_agent, fake_openai, fake_discord, adapter, caplog):
    fake = fake_discord
    agent = await make_agent()
    await adapter(agent)
    identifies = len(fake.identified)
    await fake.send_raw("{this is not json")
    await fake.wait_for(lambda: len(fake.identified) > identifies and fake.connected, what="a reconnect")
    identifies = len(fake.identified)
    await fake.send_raw('{"op": 0, "t": "MESSAGE_CREATE", "s": 99, "d": {"id": "1"}}')
    await fake.send_raw('{"op": 42, "d": null}')
    await fake.wait_for(lambda: len(fake.identified) > identifies and fake.connected, what="a second reconnect")
    question = await fake.user_message("still there?")
    thread_id = int(question["id"])
    await fake.wait_for(lambda: any(m["content"] == "echo: still there?" for m in fake.bot_messages(thread_id)))
    assert "unexpected gateway payload" in caplog.text


async def test_without_message_content_intent(make_agent, fake_openai, fake_discord, adapter, caplog):
    fake = fake_discord
    fake.allow_message_content = False
    agent = await make_agent()
    await adapter(agent)
    assert "refused the Message Content intent" in caplog.text
    question = await fake.user_message("mentions still work")
    thread_id = int(question["id"])
    await fake.wait_for(lambda: any(m["content"] == "echo: mentions still work" for m in fake.bot_messages(thread_id)))
    await fake.user_message("unseen without a mention", channel_id=thread_id, mention=False)
    await fake.user_message("seen with one", channel_id=thread_id)
    await fake.wait_for(lambda: any(m["content"] == "echo: seen with one" for m in fake.bot_messages(thread_id)))
    assert len(fake_openai.requests) == 2


async def test_markdown_table_becomes_code_block(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    table = "Sizes:\n\n| name | size |\n|---|---:|\n| a | 1 |\n| bb | 22 |"
    fake_openai.script = lambda body: Reply(text=table)
    agent = await make_agent()
    await adapter(agent)
    question = await fake.user_message("table please")
    thread_id = int(question["id"])
    content = await fake.wait_for(lambda: fake.bot_messages(thread_id)
                                  and "22" in fake.bot_messages(thread_id)[0]["content"]
                                  and fake.bot_messages(thread_id)[0]["content"])
    assert "name | size" in content and "bb   |   22" in content and "|---|" not in content
