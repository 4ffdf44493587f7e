"""Identifiers: conversation ids, button custom ids and message nonces. Pure functions.

A conversation is one thread: ``discord:{guild}:{channel}:{thread}``. In a DM the guild is ``@me``
and the channel is both the channel and the "thread". A button's ``custom_id`` must fit in 100
characters and survive restarts without a registry, so it carries the whole conversation reference
in base 36 (a snowflake is 13 characters that way) plus the approval id.
"""

from __future__ import annotations

import hashlib
import re

from bots.core.refs import ConversationRef as _Ref
from bots.core.refs import conversation_prefix, split_conversation_id

DM = "@me"
PREFIX = "discord"
CUSTOM_ID_LIMIT = 100

# verb y = approve, a = always allow in this thread, n = deny; g.c.t = guild (0 for DMs), channel, thread in base 36; then approval id.
BUTTON_TEMPLATE = r"db:(?P<verb>[yan]):(?P<g>[0-9a-z]+)\.(?P<c>[0-9a-z]+)\.(?P<t>[0-9a-z]+):(?P<a>[A-Za-z0-9_-]{1,40})"
_BUTTON_RE = re.compile(BUTTON_TEMPLATE + r"\Z")
# "Show all" (the whole arguments of an approval's tool call): the same reference, verb s.
SHOW_TEMPLATE = r"db:s:(?P<g>[0-9a-z]+)\.(?P<c>[0-9a-z]+)\.(?P<t>[0-9a-z]+):(?P<a>[A-Za-z0-9_-]{1,40})"
_SHOW_RE = re.compile(SHOW_TEMPLATE + r"\Z")


class ThreadRef(_Ref):
    """A Discord thread: the guild is the workspace ("@me" for a DM); the channel is the text channel
    a thread hangs from and the thread is where the bot replies (both the DM channel for a DM)."""

    def __init__(self, guild: str, channel: str, thread: str) -> None:
        super().__init__(PREFIX, guild, channel, thread)

    @property
    def guild(self) -> str:
        return self.workspace

    @property
    def is_dm(self) -> bool:
        return self.guild == DM


ConversationRef = ThreadRef  # the name the rest of the adapter knows


def parse_conversation_id(conversation_id: str) -> ThreadRef | None:
    parts = split_conversation_id(conversation_id, PREFIX)
    if parts is None:
        return None
    guild, channel, thread = parts
    if not (guild == DM or guild.isdigit()) or not channel.isdigit() or not thread.isdigit():
        return None
    return ThreadRef(guild, channel, thread)


def guild_prefix(guild_id: int | str | None, channel: int | str | None = None) -> str:
    """The conversation id prefix of every conversation in one guild (or every DM), or one channel of it."""
    return conversation_prefix(PREFIX, str(guild_id if guild_id is not None else DM),
                               None if channel is None else str(channel))


def b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def ref_part(ref: ConversationRef) -> str:
    guild = 0 if ref.is_dm else int(ref.guild)
    return f"{b36(guild)}.{b36(int(ref.channel))}.{b36(int(ref.thread))}"


def button_custom_id(ref: ConversationRef, approval_id: str, approve: bool, allow: bool = False) -> str:
    """``allow``: the "always allow in this thread" button (an approval)."""
    verb = "a" if allow else "y" if approve else "n"
    custom_id = f"db:{verb}:{ref_part(ref)}:{approval_id}"
    if len(custom_id) > CUSTOM_ID_LIMIT or not _BUTTON_RE.match(custom_id):
        raise ValueError(f"approval id {approval_id!r} does not fit a Discord custom_id")
    return custom_id


def show_custom_id(ref: ConversationRef, approval_id: str) -> str:
    custom_id = f"db:s:{ref_part(ref)}:{approval_id}"
    if len(custom_id) > CUSTOM_ID_LIMIT or not _SHOW_RE.match(custom_id):
        raise ValueError(f"approval id {approval_id!r} does not fit a Discord custom_id")
    return custom_id


def parse_button_custom_id(custom_id: str) -> tuple[ConversationRef, str, bool] | None:
    """(conversation, approval id, approve?) from a custom id, or None when it is not ours."""
    m = _BUTTON_RE.match(custom_id)
    return None if m is None else from_match(m)


def from_match(m: re.Match[str]) -> tuple[ConversationRef, str, bool]:
    return ref_from_match(m), m["a"], m["verb"] in "ya"


def allows_thread(m: re.Match[str]) -> bool:
    """Whether the matched button is "always allow in this thread"."""
    return m["verb"] == "a"


def ref_from_match(m: re.Match[str]) -> ConversationRef:
    guild = int(m["g"], 36)
    return ConversationRef(DM if guild == 0 else str(guild), str(int(m["c"], 36)), str(int(m["t"], 36)))


def nonce(*parts: str | int) -> str:
    """A deterministic message nonce (at most 25 characters, Discord's limit).

    Sent with ``enforce_nonce``, a retried create returns the message created the first time instead
    of posting a second one (Discord keeps nonces for a few minutes).
    """
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()
    return digest[:24]
