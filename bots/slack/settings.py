"""The Slack adapter's settings: the app's tokens, where Slack's Web API is, how answers stream, and
the suggested prompts of its AI-app threads.

Two ways to run: one workspace with ``SLACK_BOT_TOKEN`` (as before), or an app installed in many
workspaces through Slack's OAuth flow, when ``SLACK_CLIENT_ID`` is set and ``SLACK_BOT_TOKEN`` is not.
Each installation's bot token is then kept in the deployment's database (``DURABOT_DATABASE_URL``, read
by ``bots.core.settings.DatabaseSettings``), encrypted with ``DURABOT_SECRET_KEY``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from agent_core.errors import UserError
from bots.core.settings import env_field

MAX_PROMPTS = 4  # Slack shows at most four suggested prompts
PROMPT_TITLE_CHARS = 75
PROMPT_MESSAGE_CHARS = 2_000

DEFAULT_PROMPTS: tuple[tuple[str, str], ...] = (
    ("What can you do?", "What can you do, and which tools can you use?"),
    ("Summarise this channel", "Summarise what is being discussed in the channel I am looking at."),
    ("Help me write", "Help me write a short, clear message. Ask me what it is about."),
)

# The bot scopes of deploy/slack-app-manifest.yaml: what an install asks for unless SLACK_SCOPES says.
DEFAULT_SCOPES = ("app_mentions:read", "assistant:write", "chat:write", "channels:history", "groups:history",
                  "im:history", "mpim:history", "commands", "users:read", "files:read", "files:write")

STREAMING_MODES = ("native", "edits")


@dataclass
class SlackSettings:
    bot_token: str | None = env_field("SLACK_BOT_TOKEN", secret=True)
    signing_secret: str | None = env_field("SLACK_SIGNING_SECRET", secret=True)  # HTTP mode
    app_token: str | None = env_field("SLACK_APP_TOKEN", secret=True)  # Socket Mode
    api_url: str | None = env_field("SLACK_API_URL")  # a proxy or a test server
    prompts: str | None = env_field("DURABOT_SLACK_PROMPTS")  # see suggested_prompts

    def suggested_prompts(self) -> list[tuple[str, str]]:
        return suggested_prompts(self.prompts)

    # Installed in many workspaces (OAuth): the app's credentials. Installations are kept in the
    # deployment's database (DURABOT_DATABASE_URL, the process's DatabaseSettings), not read here.
    client_id: str | None = env_field("SLACK_CLIENT_ID")
    client_secret: str | None = env_field("SLACK_CLIENT_SECRET", secret=True)
    scopes: str | None = env_field("SLACK_SCOPES")  # comma-separated bot scopes
    redirect_uri: str | None = env_field("SLACK_REDIRECT_URI")  # https://<host>/slack/oauth_redirect

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

    streaming: str | None = env_field("DURABOT_SLACK_STREAMING")  # native (default) | edits

    @property
    def streaming_mode(self) -> str:
        mode = (self.streaming or "native").strip().lower()
        if mode not in STREAMING_MODES:
            raise UserError(f"DURABOT_SLACK_STREAMING={self.streaming!r} is not one of native, edits: "
                            "native streams answers with Slack's streaming methods, edits by editing a message")
        return mode


_FORMAT = ('DURABOT_SLACK_PROMPTS takes "Title=Message" pairs separated by ";" '
           '(e.g. "Status=What is running now?;Help=What can you do?"), a JSON list of '
           '{"title": ..., "message": ...} objects, or "none"')


def suggested_prompts(raw: str | None) -> list[tuple[str, str]]:
    """The (title, message) prompts offered when someone opens a new thread with the app.

    Unset: ``DEFAULT_PROMPTS``. ``none``: no prompts. Otherwise ``Title=Message;Title2=Message2`` (a
    title ends at its first ``=``; a message may not contain ``;``: use JSON for that) or a JSON list
    ``[{"title": "...", "message": "..."}]``. At most four; titles up to 75 characters."""
    if raw is None or not raw.strip():
        return list(DEFAULT_PROMPTS)
    text = raw.strip()
    if text.lower() == "none":
        return []
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise UserError(f"DURABOT_SLACK_PROMPTS is not valid JSON ({exc}); {_FORMAT}") from None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise UserError(f"DURABOT_SLACK_PROMPTS must be a JSON list of objects; {_FORMAT}")
        pairs = [(str(i.get("title") or "").strip(), str(i.get("message") or "").strip()) for i in items]
    else:
        pairs = []
        for item in filter(None, (p.strip() for p in text.split(";"))):
            title, sep, message = item.partition("=")
            if not sep:
                raise UserError(f"DURABOT_SLACK_PROMPTS: {item!r} has no '='; {_FORMAT}")
            pairs.append((title.strip(), message.strip()))
    for title, message in pairs:
        if not title or not message:
            raise UserError(f"DURABOT_SLACK_PROMPTS: every prompt needs a title and a message; {_FORMAT}")
        if len(title) > PROMPT_TITLE_CHARS or len(message) > PROMPT_MESSAGE_CHARS:
            raise UserError(f"DURABOT_SLACK_PROMPTS: prompt {title[:40]!r} is too long (titles up to "
                            f"{PROMPT_TITLE_CHARS} characters, messages up to {PROMPT_MESSAGE_CHARS})")
    if not pairs or len(pairs) > MAX_PROMPTS:
        raise UserError(f"DURABOT_SLACK_PROMPTS: give 1 to {MAX_PROMPTS} prompts (Slack shows at most "
                        f"{MAX_PROMPTS}), or 'none'; {_FORMAT}")
    return pairs
