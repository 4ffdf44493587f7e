"""Wiring: the Agent (and its bus and store) that every process builds from the same Settings."""

from __future__ import annotations

import logging

from agent_core import Agent, AgentMode, DemoModel, OpenAIChatModel, load_tools
from agent_core.settings import Settings

log = logging.getLogger(__name__)


def build_agent(settings: Settings, *, local_worker: bool | None = None,
                mode: AgentMode = AgentMode.INTERACTIVE) -> Agent:
    tools = load_tools(settings.tools) if settings.tools else _example_tools()
    mcp = []
    if settings.mcp_servers:
        from agent_core.mcp import parse_mcp_env

        mcp = parse_mcp_env(settings.mcp_servers)
    if settings.use_demo_model:
        model = DemoModel()
    else:
        model = OpenAIChatModel(settings.model, api_key=settings.openai_api_key, base_url=settings.openai_base_url)
    bus = store = None
    if settings.redis_url:
        from agent_core.redis_backend import RedisEventBus, RedisTranscriptStore

        bus, store = RedisEventBus(settings.redis_url), RedisTranscriptStore(settings.redis_url)
    temporal = settings.temporal_config()
    from .observability import configure_tracing

    interceptor = configure_tracing()  # None unless OTEL_* variables ask for tracing
    if interceptor is not None:
        temporal.interceptors = (interceptor,)
    return Agent(
        settings.agent_name, model=model, system_prompt=settings.system_prompt, tools=tools,
        temporal=temporal, approval=settings.approval,
        local_worker=settings.local_worker if local_worker is None else local_worker,
        event_bus=bus, store=store, mode=mode, mcp_servers=mcp, context_tokens=settings.context_tokens,
        blobs=settings.blob_store(), file_limits=settings.file_limits(),
    )


def _example_tools() -> list:
    from .example_tools import EXAMPLE_TOOLS

    return list(EXAMPLE_TOOLS)
