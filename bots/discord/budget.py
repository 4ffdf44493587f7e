"""The "Ask an admin to allow it" button under a message refused for its token budget.

The custom id carries the hold's id (see ``bots.core.budget_gate``): the held message is in the
database, so any adapter process, also after a restart, can let it run. Only admins (Manage Server,
DURABOT_ADMINS, or the admins of the held conversation's profile) may; the answer then arrives in the
thread through the delivery, as a new message.
"""

from __future__ import annotations

import re
from typing import Any

import discord

from bots.core.audit import Recorder, Where, Who
from bots.core.budget_gate import Overridden, override
from bots.core.policy import is_admin, place_of

from .buttons import clicks_of, guild_admin

BUDGET_TEMPLATE = r"db:b:(?P<h>[0-9a-f]{32})"


class BudgetButton(discord.ui.DynamicItem[discord.ui.Button], template=BUDGET_TEMPLATE):
    def __init__(self, hold_id: str) -> None:
        super().__init__(discord.ui.Button(label="Ask an admin to allow it", style=discord.ButtonStyle.secondary,
                                           custom_id=f"db:b:{hold_id}"))
        self.hold_id = hold_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str], /) -> "BudgetButton":
        return cls(match["h"])

    async def callback(self, interaction: discord.Interaction) -> Any:
        await on_budget_click(interaction, self.hold_id)


def budget_view(hold_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(BudgetButton(hold_id))
    return view


async def on_budget_click(interaction: discord.Interaction, hold_id: str) -> None:
    clicks = clicks_of(interaction)
    await interaction.response.defer(ephemeral=True, thinking=True)
    user = str(interaction.user.id)

    async def admin(conversation_id: str) -> bool:  # of the held message's place: its profile's admins too
        return interaction.guild_id is not None and await is_admin(
            user, clicks.admins, guild_admin(interaction), profiles=clicks.agent.profiles,
            place=place_of(conversation_id))

    audit = None
    if clicks.audit is not None:
        channel = getattr(interaction.channel, "parent_id", None) or interaction.channel_id
        guild = str(interaction.guild_id) if interaction.guild_id else "@me"
        audit = Recorder(clicks.audit, Who(user, interaction.user.display_name),
                         Where("discord", guild, str(channel), str(interaction.channel_id),
                               f"https://discord.com/channels/{guild}/{interaction.channel_id}"))
    if clicks.submitter is None or clicks.submitter.holds is None:
        return await interaction.followup.send("This adapter keeps no held messages.", ephemeral=True)
    outcome, _ = await override(clicks.submitter, clicks.submitter.holds, hold_id, user, admin, audit)
    text = {Overridden.NOT_ADMIN: "Only admins (Manage Server, or DURABOT_ADMINS) can let a turn run past its "
                                  "budget. Nothing changed.",
            Overridden.GONE: "This message was already let through.",
            Overridden.DONE: "Let through: the answer will appear in the thread."}[outcome]
    await interaction.followup.send(text, ephemeral=True)
    if outcome is Overridden.DONE and interaction.message is not None:
        await interaction.message.edit(content=f"\N{WHITE HEAVY CHECK MARK} <@{user}> let this run past the budget.",
                                       view=None)
