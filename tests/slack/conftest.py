"""Slack test harness: a fake Slack Web API, the real adapter (Bolt over HTTP or Socket Mode), a real
Temporal dev server and the fake model. Tests wait on conditions, never on fixed sleeps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from agent_core import Agent
from workers.settings import Settings
from bots.slack import SlackAdapter
from tests.fakes.slack_api import FakeSlack, SlackSender
from workers.example_tools import EXAMPLE_TOOLS

SECRET = "test-signing-secret"


@dataclass
class Harness:
    fake: FakeSlack
    agent: Agent
    adapter: SlackAdapter
    settings: Settings
    sender: SlackSender | None

    def mention_event(self, text: str, channel: str = "C1", user: str = "U1",
                      thread_ts: str | None = None) -> dict:
        event = self.fake.add_user_message(channel, f"<@{self.fake.bot_user}> {text}", user, thread_ts)
        event["type"] = "app_mention"
        event.pop("channel_type", None)
        return event

    async def mention(self, text: str, **kw: Any) -> dict:
        event = self.mention_event(text, **kw)
        assert self.sender is not None
        status, _ = await self.sender.event(event)
        assert status == 200
        return event

    async def final_reply(self, channel: str, thread_ts: str, contains: str, timeout: float = 15) -> dict:
        def done() -> dict | None:
            for m in self.fake.bot_messages(channel, thread_ts):
                if contains in m["text"] and "Thinking" not in m["text"]:
                    return m
            return None

        try:
            return await self.fake.wait_for(done, timeout)
        except TimeoutError:
            calls = [(c.method, c.status, c.error) for c in self.fake.calls]
            raise AssertionError(f"no final reply with {contains!r}; thread: "
                                 f"{self.fake.thread(channel, thread_ts)}; calls: {calls}") from None


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    yield fake
    await fake.stop()


def slack_settings(fake: FakeSlack, task_queue: str, **env: str) -> Settings:
    # The placeholder-and-edits path unless a test asks for native streaming (test_native_stream*.py).
    base = {"SLACK_BOT_TOKEN": fake.token, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.base_url,
            "DURABOT_TASK_QUEUE": task_queue, "DURABOT_SLACK_STREAMING": "edits"}
    base.update(env)
    return Settings.load(env=base, dotenv=None)


@pytest.fixture
async def start_slack(make_agent: Callable[..., Any], fake_slack: FakeSlack,
                      task_queue: str, tmp_path: Any) -> AsyncIterator[Callable[..., Any]]:
    """Start an agent and the Slack adapter over HTTP (or Socket Mode with socket=True)."""
    adapters: list[SlackAdapter] = []
    senders: list[SlackSender] = []

    async def start(socket: bool = False, agent: Agent | None = None, **env: str) -> Harness:
        if socket:
            env["SLACK_APP_TOKEN"] = fake_slack.app_token
        env.setdefault("DURABOT_DATABASE_URL", f"sqlite:///{tmp_path}/durabot.db")  # this test's audit trail
        settings = slack_settings(fake_slack, task_queue, **env)
        agent = agent or await make_agent(tools=EXAMPLE_TOOLS)
        adapter = SlackAdapter(settings, agent)
        await adapter.start()
        adapters.append(adapter)
        sender = None
        if socket:
            await adapter.connect_socket_mode()
        else:
            port = await adapter.serve_http(port=0, host="127.0.0.1")
            sender = SlackSender(f"http://127.0.0.1:{port}/slack/events", SECRET, fake_slack.team)
            senders.append(sender)
        return Harness(fake_slack, agent, adapter, settings, sender)

    yield start
    for sender in senders:
        await sender.close()
    for adapter in reversed(adapters):
        await adapter.stop()
