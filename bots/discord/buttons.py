"""Approve / Deny buttons that keep working across restarts.

The buttons are ``DynamicItem``s: the custom id carries the conversation and the approval id (see
``ids.button_custom_id``), so any adapter process can handle a click without a registry. A click is
acknowledged at once (deferred), then checked (requester, approvers, admins), then sent to the
workflow; refusals and stale clicks get an ephemeral answer, never an error.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord

from agent_core.errors import ApprovalError, DurabotError
from bots.common.runlink import LINK_LABEL

from .ids import BUTTON_TEMPLATE, ConversationRef, button_custom_id, from_match
from .render import approval_decided

if TYPE_CHECKING:
    from .app import DiscordAdapter

log = logging.getLogger(__name__)


def is_admin(user_id: str, admins: list[str], manage_guild: bool) -> bool:
    return manage_guild or user_id in admins


def may_decide(user_id: str, requester: str, approvers: list[str], admin: bool) -> bool:
    """DURABOT_APPROVERS: "requester" (the person who asked), "anyone", or user ids; admins always may."""
    if admin or "anyone" in approvers or user_id in approvers:
        return True
    return "requester" in approvers and user_id == requester


class ApprovalButton(discord.ui.DynamicItem[discord.ui.Button], template=BUTTON_TEMPLATE):
    def __init__(self, ref: ConversationRef, approval_id: str, approve: bool) -> None:
        super().__init__(discord.ui.Button(
            label="Approve" if approve else "Deny",
            style=discord.ButtonStyle.success if approve else discord.ButtonStyle.danger,
            custom_id=button_custom_id(ref, approval_id, approve),
        ))
        self.ref, self.approval_id, self.approve = ref, approval_id, approve

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str], /) -> "ApprovalButton":
        return cls(*from_match(match))

    async def callback(self, interaction: discord.Interaction) -> Any:
        adapter: DiscordAdapter = interaction.client.adapter  # type: ignore[attr-defined]
        await on_click(adapter, interaction, self.ref, self.approval_id, self.approve)


def approval_view(ref: ConversationRef, approval_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ApprovalButton(ref, approval_id, True))
    view.add_item(ApprovalButton(ref, approval_id, False))
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


async def on_click(adapter: "DiscordAdapter", interaction: discord.Interaction, ref: ConversationRef,
                   approval_id: str, approve: bool) -> None:
    # Acknowledge first: the checks below talk to Temporal, and Discord wants an answer within 3 s.
    await interaction.response.defer()
    conv, user = ref.conversation_id, str(interaction.user.id)

    async def tell(text: str) -> None:
        await interaction.followup.send(text, ephemeral=True)

    try:
        status = await adapter.agent.status(conv)
    except DurabotError as exc:
        log.warning("approval click on %s: status failed: %s", conv, exc)
        return await tell("I cannot reach the agent service right now; please try again in a minute.")
    pending = None
    if status is not None and status.current is not None:
        pending = next((a for a in status.current.approvals if a.id == approval_id), None)
    if pending is None or pending.status != "pending":
        what = f"already {pending.status}" if pending else "no longer pending (its run has ended)"
        return await tell(f"This approval is {what}; there is nothing to decide.")
    admin = is_admin(user, adapter.settings.admins, interaction.permissions.manage_guild)
    if not may_decide(user, pending.requested_by, adapter.settings.approvers, admin):
        return await tell("Only the person who asked, the configured approvers or an admin can decide this.")
    try:
        info = await adapter.agent.decide(conv, approval_id, approve, by=user)
    except ApprovalError as exc:
        return await tell(f"Nothing was changed: {exc}.")
    except DurabotError as exc:
        log.warning("approval click on %s: decide failed: %s", conv, exc)
        return await tell("I cannot reach the agent service right now; please try again in a minute.")
    content = approval_decided(info.tool, info.arguments, info.status, info.decided_by)
    message = interaction.message
    if message is not None:
        adapter.cards[(conv, approval_id)] = [message.id, content]
    await interaction.edit_original_response(content=content, view=None)
