"""Operations: the link button from an answer to its run in the Temporal UI, and the platform metrics."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

from agent_core.metrics import REGISTRY
from bots.discord.apitrace import route_name
from tests.discord.conftest import button_ids, deploy, deploy_script, ephemeral_texts, stop_ids
from tests.fakes.openai_server import Reply

UI = "http://localhost:8233"


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def api_calls(method: str) -> float:
    return counter("durabot_platform_api_calls_total", platform="discord", method=method)


def rate_wait() -> float:
    return counter("durabot_rate_limit_wait_seconds_total", platform="discord")


async def eventually(predicate, timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` holds, looking every 50 ms (for values outside the fake's state)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        await asyncio.sleep(0.05)


def link_buttons(message: dict) -> list[dict]:
    return [c for row in message.get("components", []) for c in row.get("components", []) if c.get("style") == 5]


def test_route_names():
    assert route_name("POST", "/channels/1/messages") == "create_message"
    assert route_name("PATCH", "/channels/1/messages/2") == "edit_message"
    assert route_name("POST", "/channels/1/messages/2/threads") == "create_thread"
    assert route_name("POST", "/interactions/1/tok/callback") == "interaction_callback"
    assert route_name("PATCH", "/webhooks/1/tok/messages/@original") == "edit_original_response"
    assert route_name("PUT", "/applications/1/guilds/2/commands") == "sync_commands"
    assert route_name("GET", "/guilds/1/members/2") == "other"


async def test_answer_has_a_link_button_to_its_run(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    agent = await make_agent()
    await adapter(agent, TEMPORAL_UI_URL=UI)
    question = await fake.user_message("link please")
    thread_id = int(question["id"])
    final = await fake.wait_for(lambda: next((m for m in fake.bot_messages(thread_id) if link_buttons(m)), None),
                                what="the answer with its link")
    assert final["content"] == "echo: link please"
    wid = agent.workflow_id(f"discord:{fake.guild_id}:{fake.channel_id}:{thread_id}")
    run_id = (await agent.client.get_workflow_handle(wid).describe()).run_id
    [button] = link_buttons(final)
    assert button["label"] == "View run in Temporal"
    assert button["url"] == f"{UI}/namespaces/{agent.client.namespace}/workflows/{quote(wid, safe='')}/{run_id}/history"


async def test_cancelled_notice_has_the_link_and_interactions_are_counted(make_agent, fake_openai, fake_discord,
                                                                          adapter):
    fake = fake_discord
    fake_openai.script = deploy_script
    agent = await make_agent(tools=[deploy])
    await adapter(agent, DURABOT_ADMINS=fake.bob["id"], TEMPORAL_UI_URL=UI)
    question = await fake.user_message("deploy the api")
    thread_id = int(question["id"])
    await fake.wait_for(lambda: any(button_ids(m) for m in fake.bot_messages(thread_id)))
    callbacks, followups = api_calls("interaction_callback"), api_calls("followup_message")
    cancel = await fake.slash("cancel", fake.bob, thread_id)
    await fake.wait_for(lambda: ephemeral_texts(cancel))
    notice = await fake.wait_for(lambda: link_buttons(fake.bot_messages(thread_id)[0])
                                 and fake.bot_messages(thread_id)[0], what="the cancelled notice with its link")
    assert "Run cancelled" in notice["content"]
    assert link_buttons(notice)[0]["url"].startswith(f"{UI}/namespaces/")
    assert api_calls("interaction_callback") > callbacks and api_calls("followup_message") > followups


async def test_no_link_without_ui_address(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    agent = await make_agent()
    await adapter(agent)
    question = await fake.user_message("plain")
    thread_id = int(question["id"])
    final = await fake.wait_for(lambda: next((m for m in fake.bot_messages(thread_id)
                                              if m["content"] == "echo: plain" and not stop_ids(m)), None))
    assert final["components"] == []


async def test_api_calls_and_rate_limit_waits_are_counted(make_agent, fake_openai, fake_discord, adapter):
    fake = fake_discord
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    fake_openai.script = lambda body: Reply(text=text, token_delay=0.15)
    names = ("get_me", "sync_commands", "create_thread", "create_message", "edit_message")
    before = {n: api_calls(n) for n in names}
    agent = await make_agent()
    await adapter(agent)
    question = await fake.user_message("greek letters")
    thread_id = int(question["id"])
    await fake.wait_for(lambda: fake.bot_messages(thread_id) and fake.bot_messages(thread_id)[0]["content"] == text,
                        what="the streamed answer")
    for name in names:
        assert api_calls(name) > before[name], name
    edits = len(fake.calls_to("PATCH", f"/channels/{thread_id}/messages/"))
    assert api_calls("edit_message") - before["edit_message"] >= edits

    waited = rate_wait()
    fake.fail_edits = 2  # the next two edits answer 429 (retry_after 0.3 s); discord.py waits and retries
    question = await fake.user_message("greek letters again")
    thread_id = int(question["id"])
    await fake.wait_for(lambda: fake.bot_messages(thread_id) and fake.bot_messages(thread_id)[0]["content"] == text,
                        what="the answer despite 429s")
    assert len([c for c in fake.calls if c.status == 429]) == 2
    await eventually(lambda: rate_wait() - waited >= 2 * fake.retry_after - 1e-6)
