"""Running the adapter over several gateway connections (shards), as ``DISCORD_SHARDS`` says.

Discord sends each guild's events to one shard, ``(guild_id >> 22) % shard_count`` (DMs to shard 0),
and requires sharding past 2,500 guilds. discord.py's ``AutoShardedClient`` runs many shards in one
process over one REST session; ``ShardedDurabotClient`` is the adapter's client on top of it, with the
same handlers. Unset, the adapter keeps one unsharded connection (``DurabotClient``).

Forms (parsed in bots/discord/settings.py): ``auto`` asks Discord for its recommended count
(GET /gateway/bot); ``N`` runs shards 0..N-1 here; ``N:A-B`` runs shards A..B of N here, so N shards
spread over replicas, one range each. Every shard of the bot must run somewhere, or the guilds of the
missing ones get no answer.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

from .client import DurabotClient
from .settings import ShardPlan

if TYPE_CHECKING:
    from .app import DiscordAdapter

log = logging.getLogger(__name__)


class ShardedDurabotClient(DurabotClient, discord.AutoShardedClient):
    """The adapter's client over discord.py's sharded client (handlers from ``DurabotClient``)."""

    async def on_shard_ready(self, shard_id: int) -> None:
        log.info("shard %s of %s ready", shard_id, self.shard_count)

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s: shards %s of %s, %s guilds", self.user,
                 ",".join(str(i) for i in sorted(self.shards)), self.shard_count, len(self.guilds))


def make_client(adapter: "DiscordAdapter", plan: ShardPlan | None, *, message_content: bool) -> DurabotClient:
    """The client for ``plan``: unsharded without one, else discord.py's sharded client."""
    if plan is None:
        return DurabotClient(adapter, message_content=message_content)
    return ShardedDurabotClient(adapter, message_content=message_content, shard_count=plan.count,
                                shard_ids=list(plan.ids) if plan.ids is not None else None)
