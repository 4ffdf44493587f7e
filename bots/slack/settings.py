"""The Slack adapter's settings: the app's tokens, where Slack's Web API is, and the suggested prompts
of its AI-app threads."""

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


@dataclass
class SlackSettings:
    bot_token: str | None = env_field("SLACK_BOT_TOKEN", secret=True)
    signing_secret: str | None = env_field("SLACK_SIGNING_SECRET", secret=True)  # HTTP mode
    app_token: str | None = env_field("SLACK_APP_TOKEN", secret=True)  # Socket Mode
    api_url: str | None = env_field("SLACK_API_URL")  # a proxy or a test server
    prompts: str | None = env_field("DURABOT_SLACK_PROMPTS")  # see suggested_prompts

    def suggested_prompts(self) -> list[tuple[str, str]]:
        return suggested_prompts(self.prompts)


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
