"""Operations: the link from an answer to its run in the Temporal UI, and the platform metrics."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

from agent_core.metrics import REGISTRY
from bots.core.runlink import run_url
from bots.slack.render import metadata_key, with_run_link
from tests.fakes.openai_server import Reply
from tests.slack.test_approvals_and_commands import card_of, deploy_script

UI = "http://localhost:8233"


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def api_calls(method: str) -> float:
    return counter("durabot_platform_api_calls_total", platform="slack", method=method)


def rate_wait() -> float:
    return counter("durabot_rate_limit_wait_seconds_total", platform="slack")


async def eventually(predicate, timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` holds, looking every 50 ms (for values outside the fake's state)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        await asyncio.sleep(0.05)


async def expected_link(h, thread_ts: str) -> str:
    wid = h.agent.workflow_id(f"slack:T1:C1:{thread_ts}")
    run_id = (await h.agent.client.get_workflow_handle(wid).describe()).run_id
    return f"{UI}/namespaces/{h.agent.client.namespace}/workflows/{quote(wid, safe='')}/{run_id}/history"


def link_block(message: dict) -> dict | None:
    """The run link's block (a context block; an answer's feedback buttons may follow it)."""
    return next((b for b in message.get("blocks") or [] if b["type"] == "context"), None)


def test_run_url_and_blocks():
    assert run_url(None, "default", "assistant/slack:T1:C1:1.2", "r1") is None
    assert run_url("ftp://ui", "default", "w", "r1") is None
    assert run_url("https://ui.example/", "prod ns", "assistant/c:1", "r1") == (
        "https://ui.example/namespaces/prod%20ns/workflows/assistant%2Fc%3A1/r1/history")
    assert run_url("https://ui.example", "default", "w") == "https://ui.example/namespaces/default/workflows/w"
    part = "word " * 2400  # a whole 12,000-character part
    blocks = with_run_link(part, "https://ui.example/x?a=1&b=2")
    assert len(blocks) <= 50 and all(len(b["text"]["text"]) <= 3000 for b in blocks[:-1])
    assert " ".join(b["text"]["text"] for b in blocks[:-1]).split() == part.split()
    assert blocks[-1]["elements"][0]["text"].endswith("<https://ui.example/x?a=1&amp;b=2|View run in Temporal>")


async def test_answer_links_to_its_run(start_slack, fake_openai):
    long = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum dolor " * 40 for i in range(22))  # two parts
    fake_openai.script = lambda body: Reply(text=long if "long" in body["messages"][-1]["content"] else "short")
    h = await start_slack(TEMPORAL_UI_URL=UI)
    event = await h.mention("short please")
    final = await h.final_reply("C1", event["ts"], "short")
    assert final["text"] == "short" and metadata_key(final) == f"{event['ts']}:0"
    assert final["blocks"][0]["text"]["text"] == "short"
    block = link_block(final)
    assert block is not None
    assert block["elements"][0]["text"] == f":mag: <{await expected_link(h, event['ts'])}|View run in Temporal>"

    event = await h.mention("long please")
    await h.final_reply("C1", event["ts"], "Paragraph 21")
    first, last = h.fake.bot_messages("C1", event["ts"])
    assert link_block(first) is None and link_block(last) is not None  # on the answer's last message only
    assert metadata_key(last) == f"{event['ts']}:1" and "Paragraph 21" in last["text"]
    assert h.fake.count("chat.update", ok=False) == 0 and h.fake.count("chat.postMessage", ok=False) == 0


async def test_cancelled_notice_links_to_its_run(start_slack, fake_openai):
    fake_openai.script = deploy_script
    h = await start_slack(TEMPORAL_UI_URL=UI)
    event = await h.mention("deploy web")
    await h.fake.wait_for(lambda: card_of(h, "C1", event["ts"]))
    await h.agent.cancel(f"slack:T1:C1:{event['ts']}", by="U1")
    notice = await h.final_reply("C1", event["ts"], "Run cancelled")
    assert link_block(notice)["elements"][0]["text"].startswith(f":mag: <{UI}/namespaces/")


async def test_no_link_without_ui_address(start_slack, fake_openai):
    h = await start_slack()
    event = await h.mention("plain")
    final = await h.final_reply("C1", event["ts"], "echo: plain")
    assert link_block(final) is None
    assert [b["type"] for b in final["blocks"]] == ["section", "context_actions"]  # the feedback buttons only


async def test_api_calls_and_rate_limit_waits_are_counted(start_slack, fake_openai):
    fake_openai.script = lambda body: Reply(text="streamed " * 30, token_delay=0.03)
    before = {m: api_calls(m) for m in ("auth.test", "chat.postMessage", "chat.update")}
    h = await start_slack()
    event = await h.mention("count me")
    await h.final_reply("C1", event["ts"], "streamed streamed")
    assert api_calls("auth.test") > before["auth.test"]
    assert api_calls("chat.postMessage") - before["chat.postMessage"] >= h.fake.count("chat.postMessage")
    assert api_calls("chat.update") - before["chat.update"] >= 2  # live text and the final answer

    waited = rate_wait()
    h.fake.rate_limit_next["chat.update"] = 1  # the next edit answers 429, Retry-After: 1
    event = await h.mention("again")
    await h.final_reply("C1", event["ts"], "streamed streamed")
    assert h.fake.count("chat.update", ok=False) == 1
    await eventually(lambda: rate_wait() - waited >= 0.5)
