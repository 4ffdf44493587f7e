"""The Slack adapter's settings: the app's tokens and where Slack's Web API is."""

from __future__ import annotations

from dataclasses import dataclass

from bots.core.settings import env_field


@dataclass
class SlackSettings:
    bot_token: str | None = env_field("SLACK_BOT_TOKEN", secret=True)
    signing_secret: str | None = env_field("SLACK_SIGNING_SECRET", secret=True)  # HTTP mode
    app_token: str | None = env_field("SLACK_APP_TOKEN", secret=True)  # Socket Mode
    api_url: str | None = env_field("SLACK_API_URL")  # a proxy or a test server
