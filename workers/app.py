"""Wiring: the Agent (and its bus and store) that every process builds from the same Settings."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from agent_core import Agent, AgentMode, DemoModel, OpenAIChatModel, load_tools
from agent_core.profiles import ProfileSet, load_profiles
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
    bus = store = budgets = None
    if settings.redis_url:
        from agent_core.budgets import RedisBudgets
        from agent_core.redis_backend import RedisEventBus, RedisTranscriptStore

        bus, store = RedisEventBus(settings.redis_url), RedisTranscriptStore(settings.redis_url)
        budgets = RedisBudgets(settings.redis_url)  # the token counters every process shares
    temporal = settings.temporal_config()
    from .observability import configure_tracing

    interceptor = configure_tracing()  # None unless OTEL_* variables ask for tracing
    if interceptor is not None:
        temporal.interceptors = (interceptor,)
    agent = Agent(
        settings.agent_name, model=model, system_prompt=settings.system_prompt, tools=tools,
        temporal=temporal, approval=settings.approval, local_tools=settings.local_tools,
        local_worker=settings.local_worker if local_worker is None else local_worker,
        event_bus=bus, store=store, mode=mode, mcp_servers=mcp, budgets=budgets,
        profiles=checked_profiles(settings.profiles, tools, mcp) if settings.profiles else None,
        context_tokens=settings.context_tokens,
        blobs=settings.blob_store(), file_limits=settings.file_limits(),
    )
    if budgets is not None:  # counters Redis lost are recounted from the conversations' histories
        from agent_core.budget_recount import TemporalRecount

        budgets.recount = TemporalRecount(agent)
    return agent


def checked_profiles(path: str, tools: list, mcp: list) -> ProfileSet:
    """The profiles file, checked against the loaded tools and the configured MCP servers (whose tools
    are listed only when the agent starts: a name with a server's prefix is taken on trust)."""
    profiles = load_profiles(path)
    prefixes = tuple(f"{s.prefix if s.prefix is not None else s.name}_" for s in mcp)
    known = [t for t in tools] + [SimpleNamespace(name=n) for p in profiles.profiles.values()
                                  for n in (*(p.tools or ()), *p.admin_only) if prefixes and n.startswith(prefixes)]
    profiles.check_tools(known, [s.name for s in mcp])
    return profiles


def _example_tools() -> list:
    from .example_tools import EXAMPLE_TOOLS

    return list(EXAMPLE_TOOLS)


def check_profiles_file(settings: Settings, path: str) -> str:
    """``durabot profiles check FILE``: what the file maps, or a UserError naming the place."""
    tools = load_tools(settings.tools) if settings.tools else _example_tools()
    mcp = []
    if settings.mcp_servers:
        from agent_core.mcp import parse_mcp_env

        mcp = parse_mcp_env(settings.mcp_servers)
    profiles = checked_profiles(path, tools, mcp)
    places: dict[str, list[str]] = {}
    for (platform, kind, ident), name in sorted(profiles.places.items()):
        places.setdefault(name, []).append(f"{platform} {kind} {ident}")
    lines = [f"{path}: {len(profiles.profiles)} profile(s), default {profiles.default or '(none)'}"]
    for name, p in profiles.profiles.items():
        lines.append(f"  {name}@{p.version}: " + (", ".join(places.get(name, [])) or "no places"))
    return "\n".join(lines)
