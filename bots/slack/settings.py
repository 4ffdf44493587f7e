"""The Slack adapter's settings: the app's tokens and where Slack's Web API is.

Two ways to run: one workspace with ``SLACK_BOT_TOKEN`` (as before), or an app installed in many
workspaces through Slack's OAuth flow, when ``SLACK_CLIENT_ID`` is set and ``SLACK_BOT_TOKEN`` is not.
Each installation's bot token is then kept in a database (``DURABOT_DATABASE_URL``, SQLite under
``.durabot/`` by default), encrypted with ``DURABOT_SECRET_KEY``.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_core.errors import UserError
from bots.core.settings import env_field

# The bot scopes of deploy/slack-app-manifest.yaml: what an install asks for unless SLACK_SCOPES says.
DEFAULT_SCOPES = ("app_mentions:read", "chat:write", "channels:history", "groups:history", "im:history",
                  "mpim:history", "commands", "users:read")
DEFAULT_DATABASE_URL = "sqlite:///.durabot/durabot.sqlite3"


@dataclass
class SlackSettings:
    bot_token: str | None = env_field("SLACK_BOT_TOKEN", secret=True)
    signing_secret: str | None = env_field("SLACK_SIGNING_SECRET", secret=True)  # HTTP mode
    app_token: str | None = env_field("SLACK_APP_TOKEN", secret=True)  # Socket Mode
    api_url: str | None = env_field("SLACK_API_URL")  # a proxy or a test server
    # Installed in many workspaces (OAuth): the app's credentials and where installations are kept.
    client_id: str | None = env_field("SLACK_CLIENT_ID")
    client_secret: str | None = env_field("SLACK_CLIENT_SECRET", secret=True)
    scopes: str | None = env_field("SLACK_SCOPES")  # comma-separated bot scopes
    redirect_uri: str | None = env_field("SLACK_REDIRECT_URI")  # https://<host>/slack/oauth_redirect
    database_url: str | None = env_field("DURABOT_DATABASE_URL", secret=True)  # may hold a password

    @property
    def oauth(self) -> bool:
        """Installed in many workspaces: each workspace's token comes from its installation."""
        return bool(self.client_id) and not self.bot_token

    @property
    def scope_list(self) -> list[str]:
        chosen = [s.strip() for s in (self.scopes or "").split(",") if s.strip()]
        return chosen or list(DEFAULT_SCOPES)

    def check(self, secret_key: str | None) -> None:
        """Refuse a configuration that cannot work, saying what to set. ``secret_key`` is
        DURABOT_SECRET_KEY, which encrypts the installations' tokens."""
        if not self.bot_token and not self.client_id:
            raise UserError("set SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET "
                            "(an app installed in many workspaces): see README, Slack")
        if not self.oauth:
            if not (self.app_token or self.signing_secret):
                raise UserError("set SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)")
            return
        if not self.client_secret:
            raise UserError("SLACK_CLIENT_ID is set but SLACK_CLIENT_SECRET is not: copy both from the Slack "
                            "app's Basic Information page")
        if not self.signing_secret:
            raise UserError("installing in many workspaces needs HTTP mode: set SLACK_SIGNING_SECRET (Slack "
                            "posts events to /slack/events and sends installers to /slack/oauth_redirect)")
        if self.app_token:
            raise UserError("SLACK_APP_TOKEN (Socket Mode) cannot be used with SLACK_CLIENT_ID: the install "
                            "flow needs the HTTP endpoint; unset SLACK_APP_TOKEN")
        if not secret_key:
            raise UserError("SLACK_CLIENT_ID needs DURABOT_SECRET_KEY: the workspaces' bot tokens are stored "
                            "encrypted and never in plain text; make a key with: python -c \"import os, base64; "
                            "print(base64.b64encode(os.urandom(32)).decode())\"")
