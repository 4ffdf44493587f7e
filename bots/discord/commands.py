"""The ``/durabot`` slash command: ``status`` and ``cancel`` in a conversation thread, ``runs`` anywhere.

Default command permissions are only a default that server admins can change, so ``cancel`` checks
admin rights (Manage Server, or DURABOT_ADMINS) every time it runs.

``runs`` shows a member the conversations of the channel they are in (in a conversation thread: those
of its parent channel, which holds the thread); admins see the whole guild; in a DM, that DM's own.
Nobody sees another guild's: the guild is part of every conversation id and of every query.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from agent_core.errors import DurabotError
from agent_core.listing import UNKNOWN
from agent_core.types import ConversationStatus

from .buttons import is_admin
from .ids import DM, PREFIX, ConversationRef, guild_prefix, parse_conversation_id

if TYPE_CHECKING:
    from .app import DiscordAdapter

log = logging.getLogger(__name__)

NOT_A_THREAD = "Use this inside a durabot conversation thread (or in a DM with me)."
UNAVAILABLE = "I cannot reach the agent service right now; please try again in a minute."
MAX_RUNS = 20  # lines shown
SCAN = 500  # newest conversations asked for their state; older ones are only counted
DETAIL_BUDGET = 2.0  # seconds for the conversations' own status answers


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


def visible_prefix(interaction: discord.Interaction, admin: bool) -> str | None:
    """The conversation id prefix of what this person may list here, or None for nothing."""
    channel = interaction.channel
    if interaction.guild_id is None:
        return guild_prefix(None, channel.id) if channel is not None else None
    if admin:
        return guild_prefix(interaction.guild_id)
    if isinstance(channel, discord.Thread):
        parent = channel.parent_id
    else:
        parent = channel.id if channel is not None else None
    return guild_prefix(interaction.guild_id, parent) if parent is not None else None


def describe_runs(runs: list[ConversationStatus], unchecked: int = 0, where: str = "here") -> str:
    if not runs and unchecked <= 0:
        return f"No durabot conversations are running {where}."
    lines = []
    for st in runs[:MAX_RUNS]:
        ref = parse_conversation_id(st.conversation_id)
        place = f"<#{ref.thread}>" if ref and not ref.is_dm else st.conversation_id
        if st.state == UNKNOWN:
            lines.append(f"• {place}: no answer in time")
            continue
        step = st.current.step if st.current and st.current.step else st.state.replace("_", " ")
        lines.append(f"• {place}: {step} ({st.turns} turn(s), {st.queued} queued)")
    more = []
    if len(runs) > MAX_RUNS:
        more.append(f"{len(runs) - MAX_RUNS} more")
    if unchecked > 0:
        more.append(f"{unchecked} older one(s) not checked")
    if more:
        lines.append("… and " + ", ".join(more))
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

    @group.command(name="runs", description="Running durabot conversations in this channel (admins: server)")
    async def runs(interaction: discord.Interaction) -> None:
        in_guild = interaction.guild_id is not None
        admin = in_guild and is_admin(str(interaction.user.id), adapter.settings.admins,
                                      interaction.permissions.manage_guild)
        prefix = visible_prefix(interaction, admin)
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            found = [] if prefix is None else await adapter.agent.list_conversations(
                prefix=prefix, limit=SCAN, detail_timeout=DETAIL_BUDGET)
            unchecked = 0
            if prefix is not None and len(found) >= SCAN:
                unchecked = await adapter.agent.count_conversations(prefix) - len(found)
            where = "in this server" if admin else "here"
            text = describe_runs(sorted(found, key=lambda st: st.state == UNKNOWN), unchecked, where)
        except DurabotError as exc:
            log.warning("/durabot runs failed: %s", exc)
            text = UNAVAILABLE
        await interaction.followup.send(text, ephemeral=True)

    return group
