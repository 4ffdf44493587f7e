"""The Discord adapter's settings: the bot token, where the API and gateway are, the guild to sync to."""

from __future__ import annotations

from dataclasses import dataclass

from bots.core.settings import env_field


@dataclass
class DiscordSettings:
    bot_token: str | None = env_field("DISCORD_BOT_TOKEN", secret=True)
    api_base: str | None = env_field("DISCORD_API_BASE")  # a proxy or a test server
    gateway_url: str | None = env_field("DISCORD_GATEWAY_URL")
    guild_id: str | None = env_field("DISCORD_GUILD_ID")  # sync /durabot to this guild at once
