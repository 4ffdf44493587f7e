"""Slack's AI-app threads: suggested prompts, the working status, the title, and the channel the user
looks at reaching the model. Events go through the real Bolt app as signed requests."""

from __future__ import annotations

import asyncio

import pytest

from agent_core import tool
from agent_core.errors import UserError
from bots.slack.assistant import THINKING, thread_title
from bots.slack.settings import DEFAULT_PROMPTS, suggested_prompts
from tests.fakes.openai_server import Reply, last_user_text


async def _open_thread(h, channel: str = "D1", context_channel: str | None = None) -> str:
    started = h.fake.add_assistant_thread(channel, "U1", context_channel)
    assert (await h.sender.event(started))[0] == 200
    return started["assistant_thread"]["thread_ts"]


async def _say(h, text: str, thread_ts: str, channel: str = "D1") -> dict:
    msg = h.fake.add_user_message(channel, text, "U1", thread_ts)
    assert (await h.sender.event(msg))[0] == 200
    return msg


async def test_suggested_prompts_on_thread_start_default(start_slack, fake_openai):
    h = await start_slack()
    thread = await _open_thread(h)
    [offer] = await h.fake.wait_for(lambda: h.fake.suggested)
    assert (offer["channel_id"], offer["thread_ts"]) == ("D1", thread)
    assert [(p["title"], p["message"]) for p in offer["prompts"]] == list(DEFAULT_PROMPTS)
    assert fake_openai.requests == []  # opening a thread starts no turn


async def test_suggested_prompts_configured(start_slack, fake_openai):
    h = await start_slack(DURABOT_SLACK_PROMPTS="Deploys=What was deployed today?;Runs=What is running now?")
    await _open_thread(h)
    await h.fake.wait_for(lambda: h.fake.suggested)
    assert [(p["title"], p["message"]) for p in h.fake.suggested[-1]["prompts"]] == [
        ("Deploys", "What was deployed today?"), ("Runs", "What is running now?")]


async def test_no_prompts_when_switched_off(start_slack, fake_openai):
    h = await start_slack(DURABOT_SLACK_PROMPTS="none")
    await _open_thread(h, context_channel="C5")
    await _say(h, "hello", h.fake.messages["D1"][0]["ts"])  # the thread goes on as usual
    await h.final_reply("D1", h.fake.messages["D1"][0]["ts"], "echo: hello")
    assert h.fake.suggested == [] and h.fake.count("assistant.threads.setSuggestedPrompts") == 0


def test_prompt_settings_formats_and_errors():
    assert suggested_prompts(None) == list(DEFAULT_PROMPTS)
    assert suggested_prompts(' [{"title": "A", "message": "x; y = z"}] ') == [("A", "x; y = z")]
    assert suggested_prompts("A = ask a=b ; B=two;") == [("A", "ask a=b"), ("B", "two")]
    for bad, says in [("no equals sign", "has no '='"), ("=message", "title and a message"),
                      ("[1, 2]", "JSON list of objects"), ("[{", "not valid JSON"),
                      (";".join(f"T{i}=m" for i in range(5)), "1 to 4"), ("T" * 76 + "=m", "too long")]:
        with pytest.raises(UserError, match="DURABOT_SLACK_PROMPTS") as err:
            suggested_prompts(bad)
        assert says in str(err.value), (bad, str(err.value))


async def test_a_bad_prompt_setting_stops_the_adapter_at_start(start_slack, fake_openai):
    with pytest.raises(UserError, match="DURABOT_SLACK_PROMPTS"):
        await start_slack(DURABOT_SLACK_PROMPTS="just text")


async def test_status_while_working_is_cleared_by_the_answer(start_slack, make_agent, fake_openai):
    running = asyncio.Event()
    go_on = asyncio.Event()

    @tool
    async def slow_lookup(what: str) -> str:
        """Look something up, slowly."""
        running.set()
        await asyncio.wait_for(go_on.wait(), 10)
        return f"found {what}"

    def script(body: dict) -> Reply:
        if body["messages"][-1]["role"] == "tool":
            return Reply(text="the answer is 42")
        return Reply(tool_calls=[("slow_lookup", {"what": "the answer"})])

    fake_openai.script = script
    h = await start_slack(agent=await make_agent(tools=[slow_lookup]))
    thread = await _open_thread(h)
    await _say(h, "what is the answer?", thread)

    await asyncio.wait_for(running.wait(), 10)
    await h.fake.wait_for(lambda: "is running slow_lookup…" in h.fake.thread_status("D1", thread))
    assert h.fake.thread_status("D1", thread)[0] == THINKING
    assert "" not in h.fake.thread_status("D1", thread)  # not cleared while the tool runs
    go_on.set()

    reply = await h.final_reply("D1", thread, "the answer is 42")
    await h.fake.wait_for(lambda: h.fake.thread_status("D1", thread)[-1:] == [""])
    statuses = h.fake.thread_status("D1", thread)
    assert statuses.count("") == 1, statuses
    # The clear comes after the answer became visible in the thread.
    answer_at = max(i for i, c in enumerate(h.fake.calls)
                    if c.method in ("chat.update", "chat.postMessage") and "the answer is 42" in str(c.params))
    clear_at = max(i for i, c in enumerate(h.fake.calls)
                   if c.method == "assistant.threads.setStatus" and c.params.get("status") == "")
    assert clear_at > answer_at
    assert reply["thread_ts"] == thread
    assert h.fake.over_limit == 0


async def test_title_from_the_first_message_only(start_slack, fake_openai):
    h = await start_slack()
    thread = await _open_thread(h)
    first = ("<@UBOT> *Deploy* the <https://x.example/app|web app> to production please, and tell me "
             "how long it took, because the last one was slow")
    await _say(h, first, thread)
    await h.final_reply("D1", thread, "echo: ")
    await h.fake.wait_for(lambda: h.fake.titles)
    [(channel, ts, title)] = h.fake.titles
    assert (channel, ts) == ("D1", thread)
    assert title == thread_title(first)
    assert title.startswith("Deploy the web app to production") and title.endswith("…") and len(title) <= 60
    assert "<" not in title and "*" not in title

    await _say(h, "and another thing", thread)
    await h.fake.wait_for(lambda: len([m for m in h.fake.bot_messages("D1", thread)
                                       if "another thing" in m["text"]]) == 1)
    assert len(h.fake.titles) == 1  # later messages keep the title


def test_thread_titles_are_plain_and_short():
    assert thread_title("hi <@U123>  there\n\nfriend") == "hi there friend"
    assert thread_title("see <#C42|general> &amp; <https://a.example>") == "see #general & https://a.example"
    assert thread_title("   ") == "New chat"
    assert thread_title("x" * 200) == "x" * 59 + "…"
    assert thread_title("bidi \u202e override") == "bidi override"


async def test_the_channel_looked_at_reaches_the_model_with_the_next_message(start_slack, fake_openai):
    h = await start_slack()
    thread = await _open_thread(h, context_channel="C5")
    changed = {"type": "assistant_thread_context_changed", "event_ts": h.fake.next_ts(), "assistant_thread": {
        "user_id": "U1", "channel_id": "D1", "thread_ts": thread, "context": {"channel_id": "C7", "team_id": "T1"}}}
    assert (await h.sender.event(changed))[0] == 200

    await _say(h, "summarise it", thread)
    await h.final_reply("D1", thread, "echo: summarise it")
    seen = last_user_text(fake_openai.requests[-1])
    assert seen.startswith("summarise it") and "<#C7>" in seen and "C5" not in seen

    await _say(h, "thanks", thread)  # unchanged: not repeated
    await h.final_reply("D1", thread, "echo: thanks")
    assert last_user_text(fake_openai.requests[-1]) == "thanks"

    changed["assistant_thread"]["context"] = {"channel_id": "C9", "team_id": "T1"}
    assert (await h.sender.event(changed))[0] == 200
    await _say(h, "and now?", thread)
    await h.final_reply("D1", thread, "echo: and now?")
    assert "<#C9>" in last_user_text(fake_openai.requests[-1])
    # The earlier messages of the transcript are as they were: the context went with each message once.
    sent = [m.get("content") or "" for m in fake_openai.requests[-1]["messages"] if m["role"] == "user"]
    assert sum("<#C7>" in c for c in sent) == 1 and sum("<#C9>" in c for c in sent) == 1
    assert "New chat" not in str(fake_openai.requests[0]["messages"])  # the thread's root is not context


# ---------------------------------------------------------------- the agent messaging experience
async def test_agent_view_prompts_when_the_messages_tab_opens(start_slack, fake_openai):
    h = await start_slack()
    opened = {"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "messages",
              "event_ts": h.fake.next_ts()}
    assert (await h.sender.event(opened))[0] == 200
    await h.fake.wait_for(lambda: h.fake.suggested)
    for event in (opened, dict(opened, tab="home")):
        assert (await h.sender.event(event))[0] == 200
    await _open_thread(h, "D2")  # a later call, to be sure nothing else came before it
    await h.fake.wait_for(lambda: len(h.fake.suggested) == 2)
    offer, _later = h.fake.suggested  # once: a second opening soon after asks nothing more; the Home tab nothing
    assert offer["channel_id"] == "D1" and offer["thread_ts"] is None  # an agent app's call has no thread_ts
    assert [(p["title"], p["message"]) for p in offer["prompts"]] == list(DEFAULT_PROMPTS)


async def test_agent_view_root_gets_title_status_and_the_channel_looked_at(start_slack, fake_openai):
    h = await start_slack()
    looked = {"type": "app_context_changed", "user": "U1", "event_ts": h.fake.next_ts(), "context": {
        "entities": [{"type": "slack#/types/channel_id", "value": "C7", "team_id": "T1"}]}}
    assert (await h.sender.event(looked))[0] == 200
    root = h.fake.add_user_message("D1", "what changed in the release?", "U1")
    root["thread_ts"] = root["ts"]  # Slack threads every top-level message of an agent app on its own
    h.fake.messages["D1"][-1]["thread_ts"] = root["ts"]
    assert (await h.sender.event(root))[0] == 200

    reply = await h.final_reply("D1", root["ts"], "echo: what changed in the release?")
    assert reply["thread_ts"] == root["ts"]
    assert "<#C7>" in last_user_text(fake_openai.requests[-1])
    assert h.fake.titles == [("D1", root["ts"], "what changed in the release?")]
    await h.fake.wait_for(lambda: h.fake.thread_status("D1", root["ts"])[-1:] == [""])
    assert h.fake.thread_status("D1", root["ts"])[0] == THINKING


def test_the_manifest_turns_the_agent_view_on():
    import yaml

    manifest = yaml.safe_load(open("deploy/slack-app-manifest.yaml"))
    view = manifest["features"]["agent_view"]
    assert view["agent_description"] and len(view["suggested_prompts"]) <= 4
    assert "assistant:write" in manifest["oauth_config"]["scopes"]["bot"]
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert {"app_home_opened", "app_context_changed", "message.im"} <= set(events)
    assert manifest["settings"]["interactivity"]["is_enabled"] is True  # feedback buttons and forms
