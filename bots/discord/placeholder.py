"""The "Thinking…" placeholder's Stop button, and finding the placeholder again after a restart.

Ingress submits a message to its workflow first and posts the placeholder after, so an adapter that
dies in between loses no message; the placeholder id then cannot travel in the delivery meta. Discord
messages have no metadata, but their components come back when a thread is read: the placeholder
carries a Stop button whose custom id names the turn, and the delivery finds it by reading the thread
after the user's message. A turn whose placeholder never got posted gets its answer as a new message.

The Stop button is a ``DynamicItem`` like the approval buttons: the custom id carries the conversation,
the turn and who asked, so any adapter process handles a click without a registry. Discord only sends
an interaction for a component the bot itself put on the message, so the requester in it is ours.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import discord

from agent_core.errors import DurabotError

from bots.core.audit import Action
from bots.core.policy import is_admin, place_of

from .buttons import Clicks, clicks_of, guild_admin, recorder
from .ids import ConversationRef, b36, ref_from_match, ref_part

log = logging.getLogger(__name__)

PLACEHOLDER_SEARCH = 500  # thread messages read after the user's message, oldest first, 100 a page
UNAVAILABLE = "I cannot reach the agent service right now; please try again in a minute."

# g.c.t = guild (0 for DMs), channel, thread; then the turn (the user's message id) and who asked.
STOP_TEMPLATE = (r"db:x:(?P<g>[0-9a-z]+)\.(?P<c>[0-9a-z]+)\.(?P<t>[0-9a-z]+)"
                 r":(?P<turn>[0-9a-z]+):(?P<u>[0-9a-z]+)")
_STOP_RE = re.compile(STOP_TEMPLATE + r"\Z")


def stop_custom_id(ref: ConversationRef, turn_id: str, requester: str) -> str:
    return f"db:x:{ref_part(ref)}:{b36(int(turn_id))}:{b36(int(requester))}"


def parse_stop_custom_id(custom_id: str) -> tuple[ConversationRef, str, str] | None:
    """(conversation, turn id, requester) from a Stop button's custom id; None when it is not one."""
    m = _STOP_RE.match(custom_id)
    return None if m is None else _from_match(m)


def _from_match(m: re.Match[str]) -> tuple[ConversationRef, str, str]:
    return ref_from_match(m), str(int(m["turn"], 36)), str(int(m["u"], 36))


class StopButton(discord.ui.DynamicItem[discord.ui.Button], template=STOP_TEMPLATE):
    def __init__(self, ref: ConversationRef, turn_id: str, requester: str) -> None:
        super().__init__(discord.ui.Button(label="Stop", style=discord.ButtonStyle.secondary,
                                           custom_id=stop_custom_id(ref, turn_id, requester)))
        self.ref, self.turn_id, self.requester = ref, turn_id, requester

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str], /) -> "StopButton":
        return cls(*_from_match(match))

    async def callback(self, interaction: discord.Interaction) -> Any:
        await on_stop(clicks_of(interaction), interaction, self.ref, self.turn_id, self.requester)


def stop_view(ref: ConversationRef, turn_id: str, requester: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)  # only dynamic items: discord.py keeps no per-message state
    view.add_item(StopButton(ref, turn_id, requester))
    return view


async def on_stop(clicks: Clicks, interaction: discord.Interaction, ref: ConversationRef,
                  turn_id: str, requester: str) -> None:
    await interaction.response.defer()  # cancelling talks to Temporal; Discord wants an answer within 3 s
    user = str(interaction.user.id)

    async def tell(text: str) -> None:
        await interaction.followup.send(text, ephemeral=True)

    if user != requester and not await is_admin(user, clicks.admins, guild_admin(interaction),
                                                profiles=clicks.agent.profiles, place=place_of(ref.conversation_id)):
        return await tell("Only the person who asked or an admin can stop this run.")
    try:
        await clicks.agent.cancel(ref.conversation_id, by=user, turn_id=turn_id)
    except DurabotError as exc:
        log.warning("stop click on turn %s of %s failed: %s", turn_id, ref.conversation_id, exc)
        return await tell(UNAVAILABLE)
    record = recorder(clicks.audit, interaction, ref)
    if record is not None:
        await record(Action.CANCEL, "stop requested", command=f"stop turn {turn_id}")
    await tell("Stopping this run; the answer so far stays in the thread.")


def has_stop_button(message: discord.Message, turn_id: str) -> bool:
    for row in message.components:
        for child in getattr(row, "children", [row]):
            parsed = parse_stop_custom_id(getattr(child, "custom_id", None) or "")
            if parsed is not None and parsed[1] == turn_id:
                return True
    return False


async def find_placeholder(client: discord.Client, channel_id: int, turn_id: str,
                           limit: int = PLACEHOLDER_SEARCH) -> discord.Message | None:
    """The placeholder this bot posted for ``turn_id`` in the thread, if any process posted one.

    Only messages after the user's message can be it (its id is the turn id), read oldest first, so
    the search usually ends on the first page however long the thread is.
    """
    if client.user is None or not turn_id.isdigit():
        return None
    channel = client.get_partial_messageable(channel_id)
    async for m in channel.history(limit=limit, after=discord.Object(int(turn_id)), oldest_first=True):
        if m.author.id == client.user.id and has_stop_button(m, turn_id):
            return m
    return None
