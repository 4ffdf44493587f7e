"""Running a platform adapter next to (or without) an embedded worker."""

from __future__ import annotations

import logging

from agent_core.errors import UserError
from .settings import Settings

from .app import build_agent

log = logging.getLogger(__name__)


async def run_adapter(settings: Settings, platform: str) -> None:
    if platform == "slack":
        settings.slack.check(settings.secret_key)  # one workspace's token, or the app's OAuth credentials
        from bots.slack.app import run_slack as run
    elif platform == "discord":
        if not settings.discord.bot_token:
            raise UserError("DISCORD_BOT_TOKEN is not set")
        from bots.discord.app import run_discord as run
    else:
        raise UserError(f"unknown platform {platform!r}")
    from .observability import install_temporal_runtime, start_health

    runtime_metrics = install_temporal_runtime(settings)
    agent = build_agent(settings)
    await agent.start()
    from bots.core.audit import AuditLog
    from bots.core.profile_audit import record_profile_changes

    await record_profile_changes(AuditLog.open(settings.database.url), agent.profiles)
    health = await start_health(settings, lambda: agent.client_if_connected, runtime_metrics)
    if not settings.local_worker:
        log.info("no embedded worker: 'durabot worker' processes must serve task queue %r", agent.task_queue)
    try:
        await run(settings, agent)
    finally:
        await agent.close()
        if health is not None:
            await health.cleanup()
