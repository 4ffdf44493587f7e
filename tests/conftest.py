"""Shared fixtures: one real Temporal dev server and one fake model server per session, a fresh
task queue per test. Redis is started on demand (``redis_server``)."""

from __future__ import annotations

import os
import uuid
from typing import Any, AsyncIterator, Callable

import pytest

from agent_core import Agent, OpenAIChatModel, TemporalConfig
from workers.servers import RedisServer, TemporalDevServer
from tests.fakes.openai_server import FakeOpenAI, echo_script


@pytest.fixture(scope="session")
def temporal_server() -> Any:
    server = TemporalDevServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_openai() -> Any:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _reset_fake(request: pytest.FixtureRequest) -> None:
    if "fake_openai" in request.fixturenames:
        fake = request.getfixturevalue("fake_openai")
        fake.script = echo_script
        fake.requests.clear()
        fake.context_limit, fake.overflows = None, 0
        fake.request_tokens.clear()


@pytest.fixture(scope="session")
def redis_server() -> Any:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def temporal_config(temporal_server: TemporalDevServer, task_queue: str) -> TemporalConfig:
    host, port = temporal_server.address.rsplit(":", 1)
    return TemporalConfig(host=host, port=int(port), task_queue=task_queue)


@pytest.fixture
def model(fake_openai: FakeOpenAI) -> OpenAIChatModel:
    return OpenAIChatModel("fake-model", api_key="test-key", base_url=fake_openai.base_url)


@pytest.fixture
async def make_agent(temporal_config: TemporalConfig, model: OpenAIChatModel) -> AsyncIterator[Callable[..., Any]]:
    """Build and start agents on this test's task queue; they are closed at the end of the test."""
    started: list[Agent] = []

    async def make(**kwargs: Any) -> Agent:
        kwargs.setdefault("model", model)
        kwargs.setdefault("temporal", temporal_config)
        agent = Agent(kwargs.pop("name", "assistant"), **kwargs)
        await agent.start()
        started.append(agent)
        return agent

    yield make
    for agent in reversed(started):
        await agent.close()


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DURABOT_", "SLACK_", "DISCORD_", "OPENAI_"))}
    env["PYTHONPATH"] = os.getcwd()
    env.update(extra)
    return env
