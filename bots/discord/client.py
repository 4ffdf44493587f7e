"""The discord.py client the adapter runs: its intents, and the handlers that hand everything to the
adapter (bots/discord/app.py). bots/discord/shards.py runs the same client over several shards."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from .apitrace import api_trace
from .budget import BudgetButton
from .buttons import ApprovalButton, ShowAllButton
from .commands import build_group
from .placeholder import StopButton

if TYPE_CHECKING:
    from .app import DiscordAdapter

log = logging.getLogger(__name__)


def intents(message_content: bool = True) -> discord.Intents:
    i = discord.Intents.none()
    i.guilds = True  # channels and threads, to know whose thread a message is in
    i.guild_messages = True
    i.dm_messages = True
    i.message_content = message_content
    return i


class DurabotClient(discord.Client):
    def __init__(self, adapter: "DiscordAdapter", *, message_content: bool, **options: Any) -> None:
        """``options``: more of discord.py's client options (the sharded client's shard count and ids)."""
        super().__init__(intents=intents(message_content), allowed_mentions=discord.AllowedMentions.none(),
                         guild_ready_timeout=adapter.guild_ready_timeout, http_trace=api_trace(adapter.pacer),
                         **options)
        self.adapter = adapter
        self.clicks = adapter.clicks  # what the buttons' callbacks read (see buttons.clicks_of)
        self.tree = app_commands.CommandTree(self)
        self.tree.add_command(build_group(adapter.agent, adapter.settings.admins, adapter.audit))

    async def setup_hook(self) -> None:
        self.add_dynamic_items(ApprovalButton, ShowAllButton, StopButton, BudgetButton)
        await self.adapter.on_login(self)

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s (%s guilds)", self.user, len(self.guilds))

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.ingress.on_message(message)
