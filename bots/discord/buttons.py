"""Approve / Deny / Show all buttons that keep working across restarts.

The buttons are ``DynamicItem``s: the custom id carries the conversation and the approval id (see
``ids.button_custom_id``), so any adapter process can handle a click without a registry. A click is
answered only where its card belongs: a copy of the card in another guild or channel is refused.
Who may decide is the workflow's call (it recorded the policy when it asked); the adapter adds only
what Discord alone knows, that the clicker has Manage Server in the conversation's guild. Refusals and
stale clicks get an ephemeral answer, never an error.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from dataclasses import dataclass
from typing import Any

import discord

from agent_core import Agent
from agent_core.approvals import SCOPE_ONCE, SCOPE_THREAD
from agent_core.errors import DurabotError
from bots.core.audit import AuditLog, Recorder, Where, Who
from bots.core.cache import BoundedCache
from bots.core.fit import pretty_arguments
from bots.core.approval_click import LOOKUP_WAIT, Verdict, decide_click
from bots.core.policy import AdminCheck
from bots.core.runlink import LINK_LABEL

from .ids import (
    BUTTON_TEMPLATE,
    SHOW_TEMPLATE,
    ConversationRef,
    allows_thread,
    button_custom_id,
    from_match,
    ref_from_match,
    show_custom_id,
)
from .render import approval_decided, mention

log = logging.getLogger(__name__)

NOT_HERE = ("This card belongs to another conversation (it was copied or forwarded here); "
            "use the buttons on the card in its own thread. Nothing changed.")
NOT_ALLOWED = "Only the person who asked, the configured approvers or an admin can decide this."
UNREACHABLE = "I cannot reach the agent service right now; please try again in a minute."


@dataclass(frozen=True)
class Clicks:
    """What a button click needs, and nothing more of the adapter: set on the client as ``clicks``."""

    agent: Agent
    approvers: list[str]
    admins: list[str]
    # (conversation, approval id) -> [message id, content], shared with the delivery that edits cards
    cards: BoundedCache[tuple[str, str], list]
    audit: AuditLog | None = None  # where decisions and stops are recorded
    submitter: Any = None  # bots.core.ingress.Submitter: lets a held message run (budget overrides)


def recorder(audit: AuditLog | None, interaction: discord.Interaction, ref: ConversationRef) -> Recorder | None:
    """The audit recorder of an act by the interaction's user on conversation ``ref``."""
    if audit is None:
        return None
    user = interaction.user
    who = Who(str(user.id), getattr(user, "display_name", None) or user.name)
    guild = ref.guild
    where = Where("discord", guild, ref.channel, ref.thread, f"https://discord.com/channels/{guild}/{ref.thread}",
                  ref.conversation_id)
    return Recorder(audit, who, where)


def clicks_of(interaction: discord.Interaction) -> Clicks:
    return interaction.client.clicks  # type: ignore[attr-defined]


def manages_guild(interaction: discord.Interaction) -> bool:
    """Manage Server in the guild where the interaction happened (nobody has it in a DM)."""
    return interaction.guild_id is not None and interaction.permissions.manage_guild


def guild_admin(interaction: discord.Interaction) -> AdminCheck:
    """Discord's own admin check for ``policy.is_admin``: Manage Server where the interaction happened."""
    manage = manages_guild(interaction)

    async def check(_user: str) -> bool:
        return manage

    return check


def in_its_place(interaction: discord.Interaction, ref: ConversationRef) -> bool:
    """Whether the click happened in the conversation's own guild and thread (or DM)."""
    guild = None if ref.is_dm else ref.guild
    here = None if interaction.guild_id is None else str(interaction.guild_id)
    return here == guild and str(interaction.channel_id) == ref.thread


ALWAYS_ALLOW = "Always allow in this thread"


class ApprovalButton(discord.ui.DynamicItem[discord.ui.Button], template=BUTTON_TEMPLATE):
    def __init__(self, ref: ConversationRef, approval_id: str, approve: bool, allow: bool = False) -> None:
        super().__init__(discord.ui.Button(
            label=ALWAYS_ALLOW if allow else "Approve" if approve else "Deny",
            style=(discord.ButtonStyle.primary if allow else
                   discord.ButtonStyle.success if approve else discord.ButtonStyle.danger),
            custom_id=button_custom_id(ref, approval_id, approve, allow),
        ))
        self.ref, self.approval_id, self.approve, self.allow = ref, approval_id, approve or allow, allow

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str], /) -> "ApprovalButton":
        return cls(*from_match(match), allow=allows_thread(match))

    async def callback(self, interaction: discord.Interaction) -> Any:
        await on_click(clicks_of(interaction), interaction, self.ref, self.approval_id, self.approve,
                       SCOPE_THREAD if self.allow else SCOPE_ONCE)


class ShowAllButton(discord.ui.DynamicItem[discord.ui.Button], template=SHOW_TEMPLATE):
    def __init__(self, ref: ConversationRef, approval_id: str) -> None:
        super().__init__(discord.ui.Button(
            label="Show all", style=discord.ButtonStyle.secondary, custom_id=show_custom_id(ref, approval_id)))
        self.ref, self.approval_id = ref, approval_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str], /) -> "ShowAllButton":
        return cls(ref_from_match(match), match["a"])

    async def callback(self, interaction: discord.Interaction) -> Any:
        await on_show(clicks_of(interaction), interaction, self.ref, self.approval_id)


def approval_view(ref: ConversationRef, approval_id: str, show_all: bool = False,
                  thread_scope: bool = False) -> discord.ui.View:
    """Approve, Always allow in this thread (when the approval offers it) and Deny, and "Show all"
    when the card could not show the whole arguments."""
    view = discord.ui.View(timeout=None)
    approve = ApprovalButton(ref, approval_id, True)
    if thread_scope:
        approve.item.label = "Approve once"
    view.add_item(approve)
    if thread_scope:
        view.add_item(ApprovalButton(ref, approval_id, True, allow=True))
    view.add_item(ApprovalButton(ref, approval_id, False))
    if show_all:
        view.add_item(ShowAllButton(ref, approval_id))
    return view


LINK_URL_LIMIT = 512  # Discord refuses a link button whose URL is longer


def run_link_view(url: str) -> discord.ui.View | None:
    """A link button to the run in the Temporal UI (no custom id: Discord opens it, nothing to handle).

    A button rather than a ``-#`` subtext line: it takes none of the message's 2,000 characters, so the
    answer's text and its split into parts stay exactly as they are with or without TEMPORAL_UI_URL.
    """
    if len(url) > LINK_URL_LIMIT:
        log.warning("run link of %d characters is over Discord's %d; no button shown", len(url), LINK_URL_LIMIT)
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(style=discord.ButtonStyle.link, label=LINK_LABEL, url=url))
    return view


async def on_click(clicks: Clicks, interaction: discord.Interaction, ref: ConversationRef,
                   approval_id: str, approve: bool, scope: str = SCOPE_ONCE) -> None:
    if not in_its_place(interaction, ref):
        return await interaction.response.send_message(NOT_HERE, ephemeral=True)
    # Acknowledge first: the workflow is asked below, and Discord wants an answer within 3 s.
    await interaction.response.defer()
    # The click is in the conversation's own guild (checked above), so Manage Server is a right there.
    conv, user = ref.conversation_id, str(interaction.user.id)

    async def tell(text: str) -> None:
        await interaction.followup.send(text, ephemeral=True)

    outcome = await decide_click(clicks.agent, conv, approval_id, approve, user, approvers=clicks.approvers,
                                 admins=clicks.admins, platform_admin=guild_admin(interaction),
                                 admin_known_first=True, scope=scope,
                                 audit=recorder(clicks.audit, interaction, ref))
    if outcome.verdict is Verdict.NOT_ALLOWED:
        return await tell(NOT_ALLOWED)
    if outcome.verdict is Verdict.ENDED:
        return await tell("This approval is no longer pending (its run has ended); there is nothing to decide.")
    if outcome.verdict is Verdict.ALREADY_DECIDED:
        by = f" by {mention(outcome.decided_by)}" if outcome.decided_by else ""
        return await tell(f"Nothing was changed: this approval is already {outcome.status or 'decided'}{by}.")
    if outcome.verdict is Verdict.GONE:
        return await tell("This approval is no longer pending (its run has ended or restarted); "
                          "there is nothing to decide.")
    if outcome.verdict is Verdict.NOTHING_CHANGED:
        return await tell(f"Nothing was changed: {outcome.detail}.")
    if outcome.verdict is Verdict.UNREACHABLE:
        return await tell(UNREACHABLE)
    info = outcome.info
    assert info is not None
    content = approval_decided(info.tool, info.arguments, info.status, info.decided_by, info.scope)
    message = interaction.message
    if message is not None:
        clicks.cards[(conv, approval_id)] = [message.id, content]
    await interaction.edit_original_response(content=content, view=None)


async def on_show(clicks: Clicks, interaction: discord.Interaction, ref: ConversationRef,
                  approval_id: str) -> None:
    """The whole arguments, as a file in an ephemeral answer: read from the workflow, never the card."""
    if not in_its_place(interaction, ref):
        return await interaction.response.send_message(NOT_HERE, ephemeral=True)
    await interaction.response.defer(ephemeral=True, thinking=True)
    try:
        info = await asyncio.wait_for(clicks.agent.get_approval(ref.conversation_id, approval_id), LOOKUP_WAIT)
    except (TimeoutError, DurabotError) as exc:
        log.warning("arguments of %s in %s not read: %s", approval_id, ref.conversation_id, exc)
        return await interaction.followup.send(UNREACHABLE, ephemeral=True)
    if info is None:
        return await interaction.followup.send(
            "This request is no longer open; its arguments are not kept.", ephemeral=True)
    name = re.sub(r"[^A-Za-z0-9_-]", "_", info.tool)[:60] or "tool"
    data = pretty_arguments(info.arguments).encode()
    await interaction.followup.send(
        f"Arguments of `{name}`, requested by {mention(info.requested_by)} ({len(data):,} bytes):",
        file=discord.File(io.BytesIO(data), filename=f"{name}-arguments.json"), ephemeral=True)
