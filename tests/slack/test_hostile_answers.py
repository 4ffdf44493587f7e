"""Hostile model answers through the real adapter: a pathological answer does not stall other
conversations, and control characters or mention markup reach Slack as harmless text."""

from __future__ import annotations

import time

from tests.fakes.openai_server import Reply, echo_script, last_user_text

PATHOLOGICAL = "**a " * 10_000  # 40,000 characters; quadratic for backtracking emphasis regexes


def chunks(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


async def test_pathological_answer_does_not_stall_another_conversation(start_slack, fake_openai):
    def script(body: dict) -> Reply:
        if "pathological" in last_user_text(body):
            return Reply(text=PATHOLOGICAL, tokens=chunks(PATHOLOGICAL, 2_000), token_delay=0.1)
        return echo_script(body)

    fake_openai.script = script
    h = await start_slack()
    a = await h.mention("pathological please", channel="C1")
    # A streams: its placeholder is full (the answer goes on past what one message shows).
    await h.fake.wait_for(lambda: any("continues" in m["text"] for m in h.fake.bot_messages("C1", a["ts"])), 30)
    b = h.mention_event("hello from B", channel="C2")
    started = time.monotonic()
    status, _ = await h.sender.event(b)
    acked_after = time.monotonic() - started
    assert status == 200
    assert acked_after < 3.0, f"B acknowledged after {acked_after:.1f} s: Slack would retry it"
    await h.final_reply("C2", b["ts"], "echo: hello from B", timeout=15)

    def a_done() -> bool:
        texts = [m["text"] for m in h.fake.bot_messages("C1", a["ts"])]
        return sum(t.count("**a") for t in texts) == 10_000 and not any("Thinking" in t for t in texts)

    await h.fake.wait_for(a_done, 30)
    assert h.fake.over_limit == 0


async def test_control_characters_and_mentions_reach_slack_as_text(start_slack, fake_openai):
    answer = "nul\x00here, lone \ud800 surrogate, [a](http://x><!channel>) <!here> <@U999> end"
    fake_openai.script = lambda body: Reply(text=answer)
    h = await start_slack()
    event = await h.mention("say something odd")
    final = await h.final_reply("C1", event["ts"], "end")
    text = final["text"]
    assert text.startswith("nulhere, lone \ufffd surrogate, <http://x%3E%3C!channel%3E|a>")
    assert "&lt;!here&gt; &lt;@U999&gt; end" in text
    assert "\x00" not in text and "<!" not in text and "<@" not in text
    shown = [t for _, _, ts, t in h.fake.visible if ts == final["ts"]]
    assert all("<!" not in t and "\x00" not in t for t in shown)  # live edits too
