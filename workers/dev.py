"""``durabot dev``: a Temporal dev server, a local worker, a terminal chat, and the adapters whose
tokens are set. Everything a newcomer needs, offline if no model is configured."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from agent_core.redaction import redact_urls
from .servers import TemporalDevServer, port_open
from .settings import Settings

from .app import build_agent

log = logging.getLogger(__name__)


async def _cleanup_on_cancel(runner) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def run_dev(settings: Settings, data_dir: str = ".durabot", chat: bool = True) -> None:
    server = None
    host, _, port = settings.temporal_address.rpartition(":")
    if host in ("localhost", "127.0.0.1") and not port_open(int(port)):
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        ui_port = 8233 if not port_open(8233) else None
        server = TemporalDevServer(port=int(port), ui_port=ui_port, db_file=f"{data_dir}/temporal.db",
                                   log_file=f"{data_dir}/temporal.log")
        server.start()  # in this thread: the server is tied to it and dies with it
        ui = f"http://127.0.0.1:{ui_port}" if ui_port else "(UI off: port 8233 is busy)"
        print(f"Temporal dev server on {settings.temporal_address}, Web UI {ui}, data in {data_dir}/")
        settings.temporal_ui_url = settings.temporal_ui_url or (ui if ui_port else None)
    else:
        print(f"Using the Temporal server at {settings.temporal_address}")
    settings.local_worker = True
    from .observability import install_temporal_runtime, start_health

    runtime_metrics = install_temporal_runtime(settings)
    agent = build_agent(settings)
    if settings.use_demo_model:
        print("Model: the built-in OFFLINE DEMO model (set OPENAI_API_KEY or OPENAI_BASE_URL for a real one)")
    else:
        print(f"Model: {settings.model} at {redact_urls(settings.openai_base_url or 'api.openai.com')}")
    bus = f"Redis at {redact_urls(settings.redis_url)}" if settings.redis_url else "in memory"
    print(f"Event bus and transcripts: {bus}")
    tasks: list[asyncio.Task] = []
    try:
        await agent.start()
        if chat and logging.getLogger().level == logging.INFO:
            logging.getLogger().setLevel(logging.WARNING)  # keep the chat readable; warnings still show
        health = await start_health(settings, lambda: agent.client_if_connected, runtime_metrics)
        if health is not None:
            print(f"Health and metrics: http://127.0.0.1:{settings.metrics_port}/metrics")
            tasks.append(asyncio.create_task(_cleanup_on_cancel(health)))
        if settings.slack.bot_token and (settings.slack.signing_secret or settings.slack.app_token):
            from bots.slack.app import run_slack

            tasks.append(asyncio.create_task(run_slack(settings, agent)))
            print("Slack adapter started")
        if settings.discord.bot_token:
            from bots.discord.app import run_discord

            tasks.append(asyncio.create_task(run_discord(settings, agent)))
            print("Discord adapter started")
        if chat:
            from bots.local.chat import TerminalChat

            await TerminalChat(agent, ui_url=settings.temporal_ui_url, state_file=f"{data_dir}/chat-conversation").run()
        else:
            await asyncio.Event().wait()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await agent.close()
        if server is not None:
            await asyncio.to_thread(server.stop)
