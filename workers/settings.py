"""The process's settings: the agent's, and each adapter's own part, read once by the entry point.

``Settings.load()`` reads the environment and ``.env`` once; tests pass a mapping, as for the agent's
settings: ``Settings.load(env={...}, dotenv=None)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from agent_core.settings import ENV_VARS as AGENT_ENV_VARS
from agent_core.settings import Settings as AgentSettings
from bots.core import settings as parts
from bots.discord.settings import DiscordSettings
from bots.slack.settings import SlackSettings

# Every variable the project reads, with its default. deploy/ manifests are checked against this list.
ENV_VARS: dict[str, str | None] = {**AGENT_ENV_VARS, **parts.env_vars(SlackSettings),
                                   **parts.env_vars(DiscordSettings)}
ENV_VARS["DURABOT_DATABASE_URL"] = parts.DEFAULT_DATABASE_URL


@dataclass
class Settings(AgentSettings):
    slack: SlackSettings = field(default_factory=SlackSettings)
    discord: DiscordSettings = field(default_factory=DiscordSettings)
    database: parts.DatabaseSettings = field(default_factory=parts.DatabaseSettings)

    @classmethod
    def from_values(cls, values: Mapping[str, str]) -> "Settings":
        settings = super().from_values(values)
        settings.slack = parts.from_values(SlackSettings, values)
        settings.discord = parts.from_values(DiscordSettings, values)
        settings.database = parts.from_values(parts.DatabaseSettings, values)
        return settings  # type: ignore[return-value]

    def secrets(self) -> list[str]:
        return [*super().secrets(), *parts.secrets(self.slack), *parts.secrets(self.discord),
                *parts.secrets(self.database)]
