"""Deliveries that fail: a refused payload or a renderer bug falls back to plain text and never holds up
the conversation; rate limits and outages are retried and delivered once; refusals for good are not
retried. The faults touch only writes that carry blocks (a final answer with its run link), never the
live edits before it."""

from __future__ import annotations

import logging

from bots.core.delivery import UNEXPECTED_ATTEMPTS
from bots.slack.render import metadata_key
from tests.fakes.openai_server import Reply, echo_script, last_user_text
from tests.helpers import wait_for_approval
from tests.slack.test_approvals_and_commands import deploy_script

UI = "http://localhost:8233"


def link_block(message: dict) -> dict | None:
    """The run link's block (a context block; an answer's feedback buttons may follow it)."""
    return next((b for b in message.get("blocks") or [] if b["type"] == "context"), None)


def calls_with(h, error: str, mark: str) -> list:
    return [c for c in h.fake.calls if c.error == error and mark in (c.params.get("text") or "")]


async def test_refused_blocks_fall_back_to_plain_text_once(start_slack, fake_openai, caplog):
    caplog.set_level(logging.INFO)
    h = await start_slack(TEMPORAL_UI_URL=UI)
    h.fake.refuse_blocks["MARK-1"] = "invalid_blocks"
    event = await h.mention("MARK-1 <b> & co")
    thread = event["ts"]
    final = await h.final_reply("C1", thread, "echo: MARK-1", timeout=15)
    assert final["text"] == "echo: MARK-1 &lt;b&gt; &amp; co"
    assert not final.get("blocks") and metadata_key(final) == f"{thread}:0"
    assert len(h.fake.bot_messages("C1", thread)) == 1
    assert len(calls_with(h, "invalid_blocks", "MARK-1")) == UNEXPECTED_ATTEMPTS
    assert "invalid_blocks" in caplog.text and f"turn {thread}" in caplog.text

    await h.mention("next one", thread_ts=thread)  # the conversation goes on, with the normal path
    nxt = await h.final_reply("C1", thread, "echo: next one", timeout=15)
    assert link_block(nxt) is not None


async def test_control_characters_do_not_wedge_the_conversation(start_slack, fake_openai):
    # A NUL in the model's answer once tripped the mrkdwn renderer and held every later notice back.
    def script(body: dict) -> Reply:
        if "broken" in last_user_text(body):
            return Reply(text="before \x00L7\x00 after <here>")
        return echo_script(body)

    fake_openai.script = script
    h = await start_slack()
    event = await h.mention("broken renderer")
    thread = event["ts"]
    first = await h.final_reply("C1", thread, "before L7 after", timeout=15)
    assert first["text"] == "before L7 after &lt;here&gt;"  # escaped, no control characters
    await h.mention("and now", thread_ts=thread)
    await h.final_reply("C1", thread, "echo: and now", timeout=15)
    assert [metadata_key(m) for m in h.fake.bot_messages("C1", thread)][0] == f"{thread}:0"


async def test_rate_limit_and_server_errors_are_retried_and_delivered_once(start_slack, fake_openai):
    h = await start_slack(TEMPORAL_UI_URL=UI)
    h.fake.fail_blocks["MARK-3"] = [429, 503, 500]
    event = await h.mention("MARK-3 flaky")
    thread = event["ts"]
    final = await h.final_reply("C1", thread, "echo: MARK-3 flaky", timeout=20)
    assert link_block(final) is not None  # the normal path, not the fallback
    assert h.fake.fail_blocks["MARK-3"] == []
    assert len(h.fake.bot_messages("C1", thread)) == 1
    finals = [c.status for c in h.fake.calls if c.method == "chat.update" and c.params.get("blocks")]
    assert finals == [429, 503, 500, 200]


async def test_permanent_refusal_is_not_retried(start_slack, fake_openai, caplog):
    h = await start_slack(TEMPORAL_UI_URL=UI)
    h.fake.refuse_blocks["MARK-4"] = "channel_not_found"
    event = await h.mention("MARK-4 gone")
    thread = event["ts"]
    await h.fake.wait_for(lambda: calls_with(h, "channel_not_found", "MARK-4"))
    await h.mention("after", thread_ts=thread)
    # Deliveries go out in order: once the next answer is there, the refused one was settled.
    await h.final_reply("C1", thread, "echo: after", timeout=15)
    assert len(calls_with(h, "channel_not_found", "MARK-4")) == 1
    assert "refused turn_finished" in caplog.text and "channel_not_found" in caplog.text


async def test_refused_card_is_posted_once_as_plain_text(start_slack, fake_openai):
    fake_openai.script = deploy_script
    h = await start_slack()
    h.fake.refuse_blocks["Approval needed"] = "invalid_blocks"  # the card with its buttons
    event = await h.mention("deploy web", user="U1")
    thread = event["ts"]
    card = await h.fake.wait_for(lambda: next(
        (m for m in h.fake.bot_messages("C1", thread) if "Approval needed" in m["text"]), None), timeout=15)
    assert not card.get("blocks") and "<@U1>" in card["text"] and metadata_key(card).startswith(f"{thread}:a")
    conv = f"slack:T1:C1:{thread}"
    await h.agent.decide(conv, await wait_for_approval(h.agent.get_run(conv, thread)), True, by="U1")
    await h.final_reply("C1", thread, "done: Deployed web", timeout=15)
    await h.fake.wait_for(lambda: "Approved" in h.fake.bot_messages("C1", thread)[1]["text"])
    assert len(h.fake.bot_messages("C1", thread)) == 2  # the answer and the card, each posted once
