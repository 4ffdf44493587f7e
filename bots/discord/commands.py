"""The ``/durabot`` slash command: ``status`` and ``cancel`` in a conversation thread, ``runs`` anywhere.

Default command permissions are only a default that server admins can change, so ``cancel`` checks
admin rights (Manage Server, or DURABOT_ADMINS) every time it runs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from agent_core.errors import DurabotError
from agent_core.types import ConversationStatus

from .buttons import is_admin
from .ids import DM, ConversationRef, guild_prefix, parse_conversation_id

if TYPE_CHECKING:
    from .app import DiscordAdapter

log = logging.getLogger(__name__)

NOT_A_THREAD = "Use this inside a durabot conversation thread (or in a DM with me)."
UNAVAILABLE = "I cannot reach the agent service right now; please try again in a minute."


def conversation_here(interaction: discord.Interaction) -> ConversationRef | None:
    channel = interaction.channel
    if interaction.guild_id is None and channel is not None:
        return ConversationRef(DM, str(channel.id), str(channel.id))
    if isinstance(channel, discord.Thread) and channel.parent_id is not None:
        return ConversationRef(str(interaction.guild_id), str(channel.parent_id), str(channel.id))
    return None


def describe(status: ConversationStatus | None) -> str:
    if status is None:
        return "No run is active in this conversation."
    cur = status.current
    lines = [f"**State:** {status.state.replace('_', ' ')} · {status.turns} turn(s) done · {status.queued} queued"]
    if cur is not None:
        lines.append(f"**Now:** {cur.step or cur.state}")
        if cur.tool_calls:
            lines.append("**Tools used:** " + ", ".join(f"`{t}`" for t in cur.tool_calls))
        pending = [a for a in cur.approvals if a.status == "pending"]
        if pending:
            lines.append("**Waiting for approval:** " + ", ".join(f"`{a.tool}`" for a in pending))
    return "\n".join(lines)


def describe_runs(runs: list[ConversationStatus]) -> str:
    if not runs:
        return "No durabot conversations are running here."
    lines = []
    for st in runs[:20]:
        ref = parse_conversation_id(st.conversation_id)
        where = f"<#{ref.thread}>" if ref and not ref.is_dm else st.conversation_id
        step = st.current.step if st.current and st.current.step else st.state.replace("_", " ")
        lines.append(f"• {where}: {step} ({st.turns} turn(s), {st.queued} queued)")
    if len(runs) > 20:
        lines.append(f"… and {len(runs) - 20} more")
    return "\n".join(lines)


def build_group(adapter: "DiscordAdapter") -> app_commands.Group:
    group = app_commands.Group(name="durabot", description="durabot conversations")

    @group.command(name="status", description="What the conversation in this thread is doing")
    async def status(interaction: discord.Interaction) -> None:
        ref = conversation_here(interaction)
        if ref is None:
            return await interaction.response.send_message(NOT_A_THREAD, ephemeral=True)
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            text = describe(await adapter.agent.status(ref.conversation_id))
        except DurabotError as exc:
            log.warning("/durabot status failed: %s", exc)
            text = UNAVAILABLE
        await interaction.followup.send(text, ephemeral=True)

    @group.command(name="cancel", description="Cancel the run in this thread (admins)")
    async def cancel(interaction: discord.Interaction) -> None:
        ref = conversation_here(interaction)
        if ref is None:
            return await interaction.response.send_message(NOT_A_THREAD, ephemeral=True)
        user = str(interaction.user.id)
        manage = interaction.guild_id is not None and interaction.permissions.manage_guild
        if not is_admin(user, adapter.settings.admins, manage):
            return await interaction.response.send_message(
                "Only admins (Manage Server permission, or listed in DURABOT_ADMINS) can cancel runs.",
                ephemeral=True)
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            st = await adapter.agent.status(ref.conversation_id)
            if st is None or st.current is None:
                text = "Nothing is running in this conversation."
            else:
                await adapter.agent.cancel(ref.conversation_id, by=user)
                text = "Cancelling the current run; a notice will appear in the thread."
        except DurabotError as exc:
            log.warning("/durabot cancel failed: %s", exc)
            text = UNAVAILABLE
        await interaction.followup.send(text, ephemeral=True)

    @group.command(name="runs", description="Running durabot conversations in this server")
    async def runs(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            found = await adapter.agent.list_conversations(prefix=guild_prefix(interaction.guild_id))
            if interaction.guild_id is None:  # in a DM, only that DM's conversation
                here = conversation_here(interaction)
                found = [s for s in found if here and s.conversation_id == here.conversation_id]
            text = describe_runs(found)
        except DurabotError as exc:
            log.warning("/durabot runs failed: %s", exc)
            text = UNAVAILABLE
        await interaction.followup.send(text, ephemeral=True)

    return group
