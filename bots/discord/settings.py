"""The Discord adapter's settings: the bot token, where the API and gateway are, the guild to sync to,
and the shards this process runs (``DISCORD_SHARDS``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent_core.errors import UserError
from bots.core.settings import env_field

SHARDS_FORMS = ("'auto' (Discord's recommended count), a count such as '4' (every shard in this process), "
                "or a count and this process's range such as '4:0-1' (shards 0 to 1 of 4, "
                "one replica per range)")
_FORM = re.compile(r"^(\d+)(?::(\d+)(?:-(\d+))?)?$")


@dataclass(frozen=True)
class ShardPlan:
    """Which shards this process runs: ``count`` None asks Discord (``auto``); ``ids`` None runs all."""

    count: int | None = None
    ids: tuple[int, ...] | None = None

    def __str__(self) -> str:
        if self.count is None:
            return "auto"
        if self.ids is None:
            return f"all {self.count} shards"
        return f"shards {self.ids[0]}-{self.ids[-1]} of {self.count}"

    @property
    def runs_first_shard(self) -> bool:
        """Whether shard 0 is here: one process of the bot does once-per-bot work (command sync)."""
        return self.ids is None or 0 in self.ids


def parse_shards(value: str | None) -> ShardPlan | None:
    """``DISCORD_SHARDS``: unset for one unsharded connection, else 'auto', 'N' or 'N:A-B' ('N:A': one)."""
    text = (value or "").strip()
    if not text:
        return None
    if text.lower() == "auto":
        return ShardPlan()
    m = _FORM.match(text)
    if m is None:
        raise UserError(f"DISCORD_SHARDS={value!r} is not understood: use {SHARDS_FORMS}")
    count = int(m[1])
    if count < 1:
        raise UserError(f"DISCORD_SHARDS={value!r}: the shard count must be at least 1; use {SHARDS_FORMS}")
    if m[2] is None:
        return ShardPlan(count)
    first = int(m[2])
    last = int(m[3]) if m[3] is not None else first
    if first > last:
        raise UserError(f"DISCORD_SHARDS={value!r}: the range {first}-{last} runs backwards; write the lower "
                        f"shard first, as in '{count}:{last}-{first}'")
    if last >= count:
        raise UserError(f"DISCORD_SHARDS={value!r}: shard ids run from 0 to {count - 1} for {count} shards, "
                        f"so {last} does not exist; use {SHARDS_FORMS}")
    return ShardPlan(count, tuple(range(first, last + 1)))


@dataclass
class DiscordSettings:
    bot_token: str | None = env_field("DISCORD_BOT_TOKEN", secret=True)
    api_base: str | None = env_field("DISCORD_API_BASE")  # a proxy or a test server
    gateway_url: str | None = env_field("DISCORD_GATEWAY_URL")
    guild_id: str | None = env_field("DISCORD_GUILD_ID")  # sync /durabot to this guild at once
    shards: str | None = env_field("DISCORD_SHARDS")  # unset: one connection, no sharding

    def __post_init__(self) -> None:
        self.shard_plan = parse_shards(self.shards)  # fails at load, with the accepted forms
