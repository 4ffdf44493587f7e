"""Fixtures for the Discord adapter: a fake Discord per test, and adapters that can be killed and restarted."""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Callable

import pytest

from agent_core import ToolContext, tool
from workers.settings import Settings
from bots.discord.app import run_discord
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import Reply


@tool(requires_approval=True)
async def deploy(service: str, ctx: ToolContext) -> str:
    """Deploy a service."""
    return f"deployed {service}"


def deploy_script(body: dict) -> Reply:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text=f"done: {last['content']}")
    return Reply(tool_calls=[("deploy", {"service": "api"})])


class Adapter:
    """One adapter 'process' in the test's event loop."""

    def __init__(self, fake: FakeDiscord, settings: Settings, agent: Any) -> None:
        self.fake, self.settings, self.agent = fake, settings, agent
        self.task: asyncio.Task | None = None

    async def start(self) -> "Adapter":
        before = (len(self.fake.identified), len(self.fake.calls_to("PUT", "/commands")))
        self.task = asyncio.create_task(run_discord(self.settings, self.agent, guild_ready_timeout=0.1))
        await self.fake.wait_for(
            lambda: self.task.done() or (
                len(self.fake.identified) > before[0] and self.fake.connected
                and len(self.fake.calls_to("PUT", "/commands")) > before[1]),
            what="the adapter to connect and sync its commands")
        if self.task.done():
            self.task.result()  # raise what stopped it
        return self

    async def kill(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    fake = await FakeDiscord().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def adapter(fake_discord: FakeDiscord, task_queue: str, tmp_path: Any) -> AsyncIterator[Callable[..., Any]]:
    """``await adapter(agent, **env)`` starts an adapter; every one is stopped at the end of the test."""
    started: list[Adapter] = []

    async def start(agent: Any, **env: str) -> Adapter:
        env.setdefault("DURABOT_DATABASE_URL", f"sqlite:///{tmp_path}/durabot.db")  # this test's audit trail
        settings = Settings.load(env={**fake_discord.env(), "DURABOT_TASK_QUEUE": task_queue, **env}, dotenv=None)
        a = await Adapter(fake_discord, settings, agent).start()
        started.append(a)
        return a

    yield start
    for a in started:
        await a.kill()


def button_ids(message: dict) -> list[str]:
    """The Approve / Deny (and Show all) custom ids of an approval card, not the placeholder's Stop button."""
    return [i for i in all_custom_ids(message) if i.startswith(("db:y:", "db:n:", "db:s:"))]


def stop_ids(message: dict) -> list[str]:
    return [i for i in all_custom_ids(message) if i.startswith("db:x:")]


def all_custom_ids(message: dict) -> list[str]:
    return [c["custom_id"] for row in message.get("components", []) for c in row.get("components", [])
            if c.get("custom_id")]


def ephemeral_texts(interaction: Any) -> list[str]:
    out = [r["data"]["content"] for r in interaction.responses
           if r.get("data") and r["data"].get("flags", 0) & 64 and r["data"].get("content")]
    out += [f["content"] for f in interaction.followups if f.get("flags", 0) & 64]
    return out


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1)[:3000]
