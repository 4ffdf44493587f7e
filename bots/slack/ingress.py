"""Slack event payloads -> neutral incoming messages, and thread history -> context. Pure.

Which messages start or continue a turn:
- ``app_mention`` in a channel starts (or continues) the conversation of its thread;
- a ``message`` in a thread continues it without a mention when the bot takes part in that thread
  (the caller checks that; see ``IncomingMessage.needs_membership``);
- a direct message always counts.
The bot's own messages, other bots' messages and edits / deletions never start a turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent_core.types import ChatMessage

from .ids import ThreadRef

# Subtypes that are a person writing something new; every other subtype (edits, joins, bot messages,
# deletions...) is ignored.
_USER_SUBTYPES = {None, "", "file_share", "thread_broadcast"}
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")

CONTEXT_MESSAGES = 30  # earlier thread messages given to a new conversation, at most
CONTEXT_CHARS = 12_000  # in total
CONTEXT_MESSAGE_CHARS = 2_000  # each


@dataclass(frozen=True)
class IncomingMessage:
    ref: ThreadRef
    message_id: str  # the message ts: stable across Slack's retries and shared by app_mention/message
    user: str
    user_name: str | None
    text: str
    in_existing_thread: bool  # written as a reply in a thread (earlier messages may be context)
    needs_membership: bool  # only counts if the bot already takes part in the thread
    bare_mention: bool = False  # a mention with nothing to ask: answer how to ask, start no turn


def strip_mention(text: str, bot_user_id: str | None) -> str:
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", "", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def is_bare(text: str) -> bool:
    """Nothing to ask in it: only whitespace, punctuation or symbols."""
    return not any(ch.isalnum() for ch in text)


def mentions(text: str, user_id: str | None) -> bool:
    return bool(user_id) and any(m == user_id for m in _MENTION.findall(text or ""))


def translate_event(event: dict, team: str, bot_user_id: str | None, bot_id: str | None) -> IncomingMessage | None:
    """The neutral message for an ``app_mention`` or ``message`` event, or None when it is not for us."""
    kind = event.get("type")
    if kind not in ("app_mention", "message"):
        return None
    if event.get("subtype") not in _USER_SUBTYPES or event.get("bot_id") or event.get("bot_profile"):
        return None
    user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
    if not (isinstance(user, str) and isinstance(channel, str) and isinstance(ts, str)) or not user or not ts:
        return None
    if user == bot_user_id or (bot_id and event.get("bot_id") == bot_id):
        return None
    text = event.get("text") or ""
    if not isinstance(text, str):
        return None
    thread_ts = event.get("thread_ts") if isinstance(event.get("thread_ts"), str) else None
    is_dm = event.get("channel_type") == "im" or channel.startswith("D")
    in_thread = bool(thread_ts and thread_ts != ts)
    if kind == "message" and not is_dm:
        if mentions(text, bot_user_id):
            return None  # the app_mention event of the same message handles it
        if not in_thread:
            return None  # channel chatter outside threads is not for us
    if is_dm and not thread_ts:
        ref = ThreadRef(team, channel, "")
    else:
        ref = ThreadRef(team, channel, thread_ts or ts)
    profile = event.get("user_profile") if isinstance(event.get("user_profile"), dict) else {}
    name = profile.get("display_name") or profile.get("real_name") or None
    stripped = strip_mention(text, bot_user_id)
    bare = (kind == "app_mention" or mentions(text, bot_user_id)) and not event.get("files") and is_bare(stripped)
    return IncomingMessage(
        ref=ref, message_id=ts, user=user, user_name=name, text=stripped,
        in_existing_thread=in_thread, needs_membership=(kind == "message" and not is_dm), bare_mention=bare,
    )


def thread_context(messages: list[dict], bot_user_id: str | None, before_ts: str) -> list[ChatMessage]:
    """Earlier messages of a thread (conversations.replies order) as context, newest kept, bounded."""
    picked: list[ChatMessage] = []
    total = 0
    earlier = [m for m in messages if isinstance(m, dict) and _ts(m.get("ts")) < _ts(before_ts)]
    for m in reversed(earlier[-CONTEXT_MESSAGES:]):
        text = (m.get("text") or "").strip()
        if not text:
            continue
        if len(text) > CONTEXT_MESSAGE_CHARS:
            text = text[:CONTEXT_MESSAGE_CHARS] + " …"
        if total + len(text) > CONTEXT_CHARS:
            break
        total += len(text)
        mine = bool(m.get("bot_id")) and (m.get("user") in (None, bot_user_id))
        if mine:
            picked.append(ChatMessage(role="assistant", content=text))
        else:
            picked.append(ChatMessage(role="user", content=strip_mention(text, bot_user_id),
                                      name=_safe_name(m.get("user") or m.get("username") or "user")))
    picked.reverse()
    return picked


def _safe_name(name: str) -> str:
    # OpenAI-style names allow letters, digits, _ and - only.
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(name))[:64] or "user"


def _ts(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
