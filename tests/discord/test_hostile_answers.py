"""Hostile model answers through the real Discord adapter: mentions in the text ping nobody (checked
on the wire: every message the bot writes allows no mentions) and control characters are cleaned."""

from __future__ import annotations

from typing import Any

from tests.fakes.openai_server import Reply

ANSWER = ("@everyone @here look: <@{user}> <@!{user}> <@&{role}> and nul\x00here, lone \ud800 surrogate,"
          " bidi \u202eevil\u202c, end")


def _writes(calls: list[Any]) -> list[dict]:
    """Bodies of every call that writes message content: channel messages, interaction responses,
    followups and their edits."""
    out = []
    for c in calls:
        if c.method not in ("POST", "PATCH") or not isinstance(c.body, dict):
            continue
        body = c.body.get("data") if "/interactions/" in c.path else c.body
        if isinstance(body, dict) and "content" in body:
            out.append(body)
    return out


def _allows_nothing(body: dict) -> bool:
    allowed = body.get("allowed_mentions")
    return (isinstance(allowed, dict) and allowed.get("parse") == [] and not allowed.get("users")
            and not allowed.get("roles") and not allowed.get("replied_user"))


async def test_mentions_ping_nobody_and_control_characters_are_cleaned(make_agent, fake_openai, fake_discord,
                                                                       adapter):
    fake = fake_discord
    answer = ANSWER.format(user=fake.bob["id"], role=fake.guild_id)
    fake_openai.script = lambda body: Reply(text=answer, token_delay=0.05)
    agent = await make_agent()
    await adapter(agent)
    question = await fake.user_message("say something odd")
    thread_id = int(question["id"])
    final = await fake.wait_for(lambda: next((m for m in fake.bot_messages(thread_id)
                                              if m["content"].endswith("end")), None), what="the answer")
    content = final["content"]
    assert content.startswith(f"@everyone @here look: <@{fake.bob['id']}>")
    assert "nulhere, lone \ufffd surrogate, bidi evil, end" in content
    runs = await fake.slash("runs", fake.bob, fake.channel_id)
    await fake.wait_for(lambda: runs.responses, what="the runs answer")

    writes = _writes(fake.calls)
    assert len(writes) >= 3  # the placeholder, live edits, the final text, the command's answer
    assert all(_allows_nothing(w) for w in writes), [w.get("allowed_mentions") for w in writes]
    assert all("\x00" not in w["content"] and "\ud800" not in w["content"] for w in writes)
