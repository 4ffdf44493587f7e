"""The Slack adapter's settings: the app's tokens, where Slack's Web API is, and how answers stream."""

from __future__ import annotations

from dataclasses import dataclass

from agent_core.errors import UserError
from bots.core.settings import env_field

STREAMING_MODES = ("native", "edits")


@dataclass
class SlackSettings:
    bot_token: str | None = env_field("SLACK_BOT_TOKEN", secret=True)
    signing_secret: str | None = env_field("SLACK_SIGNING_SECRET", secret=True)  # HTTP mode
    app_token: str | None = env_field("SLACK_APP_TOKEN", secret=True)  # Socket Mode
    api_url: str | None = env_field("SLACK_API_URL")  # a proxy or a test server
    streaming: str | None = env_field("DURABOT_SLACK_STREAMING")  # native (default) | edits

    @property
    def streaming_mode(self) -> str:
        mode = (self.streaming or "native").strip().lower()
        if mode not in STREAMING_MODES:
            raise UserError(f"DURABOT_SLACK_STREAMING={self.streaming!r} is not one of native, edits: "
                            "native streams answers with Slack's streaming methods, edits by editing a message")
        return mode
