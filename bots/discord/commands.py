"""The ``/durabot`` slash command: ``status`` and ``cancel`` in a conversation thread, ``runs`` anywhere.

Default command permissions are only a default that server admins can change, so ``cancel`` checks
admin rights (Manage Server, or DURABOT_ADMINS) every time it runs. A profile's admins are admins in
that profile's channels (``bots.core.policy``): they cancel there, and read the usage and the audit
trail of those channels.

``runs`` shows a member the conversations of the channel they are in (in a conversation thread: those
of its parent channel, which holds the thread); admins see the whole guild; in a DM, that DM's own.
Nobody sees another guild's: the guild is part of every conversation id and of every query.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

import discord
from discord import app_commands

from agent_core import Agent
from agent_core.errors import DurabotError
from agent_core.listing import UNKNOWN
from agent_core.types import ConversationStatus

from bots.core.policy import Place, is_admin
from bots.core.allowances import revoke
from bots.core.audit import Action, AuditLog
from bots.core.audit_view import lines, parse_audit
from bots.core.usage_view import usage_lines
from bots.core.runs import MAX_RUNS, Listing, allowed, build, context, find_runs, step, tools, waiting

from .buttons import guild_admin, recorder
from .ids import DM, PREFIX, ConversationRef, guild_prefix, parse_conversation_id
from .render import mention

log = logging.getLogger(__name__)

NOT_A_THREAD = "Use this inside a durabot conversation thread (or in a DM with me)."
UNAVAILABLE = "I cannot reach the agent service right now; please try again in a minute."
DETAIL_BUDGET = 2.0  # seconds for the conversations' own status answers
AUDIT_REFUSED = ("Only admins (Manage Server permission, listed in DURABOT_ADMINS, or admins of this channel's "
                 "profile) can read the audit trail.")


def conversation_here(interaction: discord.Interaction) -> ConversationRef | None:
    channel = interaction.channel
    if interaction.guild_id is None and channel is not None:
        return ConversationRef(DM, str(channel.id), str(channel.id))
    if isinstance(channel, discord.Thread) and channel.parent_id is not None:
        return ConversationRef(str(interaction.guild_id), str(channel.parent_id), str(channel.id))
    return None


def fit_message(text: str, limit: int = 2000) -> str:
    """``text`` cut at a line within Discord's message limit."""
    if len(text) <= limit:
        return text
    return text[: text.rfind("\n", 0, limit - 2)] + "\n…"


def describe(status: ConversationStatus | None) -> str:
    if status is None:
        return "No run is active in this conversation."
    lines = [f"**State:** {status.state.replace('_', ' ')} · {status.turns} turn(s) done · {status.queued} queued"]
    if status.current is not None:
        lines.append(f"**Now:** {step(status) or status.current.state}")
        if tools(status):
            lines.append("**Tools used:** " + ", ".join(f"`{t}`" for t in tools(status)))
        if waiting(status):
            lines.append("**Waiting for approval:** " + ", ".join(f"`{t}`" for t in waiting(status)))
    if status.profile:
        lines.append(f"**Profile:** `{status.profile}`")
    if allowed(status):
        lines.append("**Allowed in this thread:** " + ", ".join(f"`{t}` (by {mention(by)})" for t, by in allowed(status)))
    if context(status):
        lines.append(f"**Context:** {context(status)}")
    if build(status):
        lines.append(f"**Build:** `{build(status)}`")
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


def describe_runs(listing: Listing, where: str = "here") -> str:
    if listing.empty:
        return f"No durabot conversations are running {where}."
    lines = []
    for st in listing.runs[:MAX_RUNS]:
        ref = parse_conversation_id(st.conversation_id)
        place = f"<#{ref.thread}>" if ref and not ref.is_dm else st.conversation_id
        if st.state == UNKNOWN:
            lines.append(f"• {place}: no answer in time")
            continue
        doing = step(st) or st.state.replace("_", " ")
        lines.append(f"• {place}: {doing} ({st.turns} turn(s), {st.queued} queued)")
    more = listing.more("older one(s)")
    if more:
        lines.append(more)
    return "\n".join(lines)


async def _answer(interaction: discord.Interaction, verb: str, work: Callable[[], Awaitable[str]]) -> None:
    """Acknowledge (the agent may take more than Discord's 3 s), then answer what ``work`` says."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    try:
        text = await work()
    except DurabotError as exc:
        log.warning("/durabot %s failed: %s", verb, exc)
        text = UNAVAILABLE
    await interaction.followup.send(text, ephemeral=True)


def build_group(agent: Agent, admins: list[str], audit: AuditLog | None = None) -> app_commands.Group:
    """The /durabot group, with what it needs: the agent, DURABOT_ADMINS (Discord's own admins,
    Manage Server, are read from each interaction) and the audit trail."""
    group = app_commands.Group(name="durabot", description="durabot conversations")

    async def admin_in(interaction: discord.Interaction, channel: str | None = None) -> bool:
        """An admin of the guild, or (``channel``: a text channel of it, or a DM) of that channel's profile."""
        guild = str(interaction.guild_id) if interaction.guild_id is not None else DM
        place = Place(PREFIX, guild, channel) if channel else None
        return await is_admin(str(interaction.user.id), admins, guild_admin(interaction),
                              profiles=agent.profiles, place=place)

    @group.command(name="status", description="What the conversation in this thread is doing")
    async def status(interaction: discord.Interaction) -> None:
        ref = conversation_here(interaction)
        if ref is None:
            return await interaction.response.send_message(NOT_A_THREAD, ephemeral=True)
        conv = ref.conversation_id

        async def work() -> str:
            return describe(await agent.status(conv))

        await _answer(interaction, "status", work)

    @group.command(name="cancel", description="Cancel the run in this thread (admins)")
    async def cancel(interaction: discord.Interaction) -> None:
        ref = conversation_here(interaction)
        if ref is None:
            return await interaction.response.send_message(NOT_A_THREAD, ephemeral=True)
        user = str(interaction.user.id)
        if not await admin_in(interaction, ref.channel):
            return await interaction.response.send_message(
                "Only admins (Manage Server permission, or listed in DURABOT_ADMINS) can cancel runs.",
                ephemeral=True)

        conv = ref.conversation_id

        async def work() -> str:
            st = await agent.status(conv)
            if st is None or st.current is None:
                return "Nothing is running in this conversation."
            await agent.cancel(conv, by=user)
            record = recorder(audit, interaction, ref)
            if record is not None:
                await record(Action.CANCEL, "cancel requested", command="cancel")
            return "Cancelling the current run; a notice will appear in the thread."

        await _answer(interaction, "cancel", work)

    @group.command(name="revoke", description="Ask for approval again for a tool allowed in this thread")
    @app_commands.describe(tool="the tool allowed with \"Always allow in this thread\"")
    async def revoke_(interaction: discord.Interaction, tool: str) -> None:
        ref = conversation_here(interaction)
        if ref is None:
            return await interaction.response.send_message(NOT_A_THREAD, ephemeral=True)
        conv, user = ref.conversation_id, str(interaction.user.id)

        async def work() -> str:
            done = await revoke(agent, conv, tool, user)
            record = recorder(audit, interaction, ref)
            if record is not None:
                await record(Action.REVOCATION, "revoked" if done.allowance else "nothing to revoke",
                             tool=tool, command=f"revoke {tool}")
            if done.allowance is None:
                left = ", ".join(f"`{t}`" for t in done.allowed) or "none"
                return f"`{tool}` is not allowed in this thread (allowed: {left}). Nothing changed."
            return f"\N{LOCK} `{tool}` needs approval again in this thread."

        await _answer(interaction, "revoke", work)

    @group.command(name="usage", description="Tokens and turns: this thread, this channel and you (admins: anyone)")
    @app_commands.describe(query="admins: @user and/or #channel to look at")
    async def usage_(interaction: discord.Interaction, query: str = "") -> None:
        user = str(interaction.user.id)
        guild = str(interaction.guild_id) if interaction.guild_id else DM
        ref = conversation_here(interaction)
        channel = ref.channel if ref else str(interaction.channel_id)
        parsed = parse_audit(query, guild)
        if parsed.filter is None:
            return await interaction.response.send_message(parsed.problem or "", ephemeral=True)
        person, place = parsed.filter.user or user, parsed.filter.channel or channel
        # Another person is looked up from here, another channel in its own place.
        looks = ({channel} if person != user else set()) | ({place} if place != channel else set())
        if looks and not (interaction.guild_id is not None and all([await admin_in(interaction, w) for w in looks])):
            return await interaction.response.send_message(
                "Only admins can see other people's or channels' usage.", ephemeral=True)

        async def work() -> str:
            found = await usage_lines(
                agent, person=(mention(person), f"discord:{guild}:{person}"),
                channel=(f"<#{place}>", f"discord:{guild}:{place}"),
                thread=("this thread", ref.conversation_id) if ref and place == channel else None)
            return "**Token usage (UTC days):**\n" + "\n".join(found)

        await _answer(interaction, "usage", work)

    @group.command(name="audit", description="Who approved, allowed, revoked or cancelled what (admins)")
    @app_commands.describe(query="@user, #channel and/or a tool name, and since (30m, 12h, 7d, 2w or a date)")
    async def audit_(interaction: discord.Interaction, query: str = "") -> None:
        parsed = parse_audit(query, str(interaction.guild_id))
        wanted = parsed.filter
        if interaction.guild_id is None:
            return await interaction.response.send_message(AUDIT_REFUSED, ephemeral=True)
        if not await admin_in(interaction):
            # A profile's admin reads the trail of one channel of that profile: the one named, else here.
            ref = conversation_here(interaction)
            where = (wanted.channel if wanted is not None else None) or (ref.channel if ref else
                                                                        str(interaction.channel_id))
            if not await admin_in(interaction, where):
                return await interaction.response.send_message(AUDIT_REFUSED, ephemeral=True)
            wanted = replace(wanted, channel=where) if wanted is not None else None
        if wanted is None or audit is None:
            return await interaction.response.send_message(
                parsed.problem or "No audit trail is kept by this adapter.", ephemeral=True)

        async def work() -> str:
            records = await audit.find(wanted)
            if not records:
                return "No audit records match."
            found = lines(records, mention, lambda r: f"<#{r.thread or r.channel}>")
            return fit_message("**Audit trail, newest first:**\n" + "\n".join(found))

        await _answer(interaction, "audit", work)

    @group.command(name="runs", description="Running durabot conversations in this channel (admins: server)")
    async def runs(interaction: discord.Interaction) -> None:
        in_guild = interaction.guild_id is not None
        admin = in_guild and await is_admin(str(interaction.user.id), admins, guild_admin(interaction))
        prefix = visible_prefix(interaction, admin)

        async def work() -> str:
            listing = Listing([], 0) if prefix is None else await find_runs(agent, prefix, DETAIL_BUDGET)
            return describe_runs(listing, "in this server" if admin else "here")

        await _answer(interaction, "runs", work)

    return group
