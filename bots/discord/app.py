"""The Discord adapter process: a discord.py client, the delivery worker, and their wiring.

``run_discord(settings, agent)`` serves until cancelled. Ingress (messages in), delivery (durable
notices out), buttons and slash commands live in their own modules; this one connects them, says
which intents and permissions the bot needs, and reconnects when the gateway connection breaks.
"""

from __future__ import annotations

import asyncio
import logging

import discord
import yarl

from agent_core import Agent
from agent_core.errors import UserError
from agent_core.settings import Settings
from bots.core.audit import AuditLog
from bots.core.budget_gate import Holds
from bots.core.cache import BoundedCache
from bots.core.delivery import DeliveryActivity
from bots.core.delivery_worker import DeliveryWorker, delivery_queue
from bots.core.ingress import Submitter
from bots.core.runlink import RunLinks
from bots.core.settings import database_url

from .buttons import Clicks
from .client import DurabotClient
from .delivery import DiscordDeliverer
from .ingress import Ingress
from .ratelimit import ChannelLimiter, global_pacer
from .shards import make_client
from .streaming import Replies, ReplyWriter

log = logging.getLogger(__name__)

# Exactly what the bot does: read channels and history (context), post and edit its messages,
# open threads on the messages that mention it, and post in those threads.
PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, send_messages_in_threads=True, create_public_threads=True,
    read_message_history=True,
)
SCOPES = ("bot", "applications.commands")
CARDS = 5_000

INTENTS_HELP = (
    "Discord intents used: Guilds, Guild Messages, Direct Messages and Message Content. Message Content is "
    "privileged: enable it in the Developer Portal (your application > Bot > Privileged Gateway Intents). "
    "Without it the bot still answers messages that mention it and DMs, but in its threads people must "
    "mention it every time. Buttons and /durabot work either way."
)
NO_MESSAGE_CONTENT = (
    "Discord refused the Message Content intent (it is not enabled for this application). Continuing "
    "without it: the bot answers mentions and DMs only. Enable it in the Developer Portal > Bot > "
    "Privileged Gateway Intents to continue conversations in threads without a mention."
)


def invite_url(application_id: int) -> str:
    return discord.utils.oauth_url(application_id, permissions=PERMISSIONS, scopes=SCOPES)


def configure_endpoints(settings: Settings) -> None:
    """Point discord.py at DISCORD_API_BASE / DISCORD_GATEWAY_URL (proxies, tests).

    discord.py keeps both as class attributes, so this is process-wide, like the library itself.
    """
    if settings.discord.api_base:
        discord.http.Route.BASE = settings.discord.api_base.rstrip("/")
    if settings.discord.gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord.gateway_url)


class DiscordAdapter:
    def __init__(self, settings: Settings, agent: Agent, *, guild_ready_timeout: float = 2.0) -> None:
        """``settings``: the process's settings, the agent's with this adapter's part as
        ``settings.discord`` (a ``DiscordSettings``)."""
        if not settings.discord.bot_token:
            raise UserError("DISCORD_BOT_TOKEN is not set: copy the bot token from the Developer Portal (Bot > Token)")
        self.settings = settings
        self.agent = agent
        self.guild_ready_timeout = guild_ready_timeout
        self.delivery_queue = delivery_queue(agent.task_queue, "discord")
        self.limiter = ChannelLimiter()
        self.pacer = global_pacer()  # every REST call of this process, all shards and clients
        self.replies = Replies()
        # (conversation, approval id) -> [message id, content]; a card pushed out is found in its thread again
        self.cards: BoundedCache[tuple[str, str], list] = BoundedCache(CARDS)
        self.writer = ReplyWriter(lambda: self.client, self.limiter)
        self.submitter = Submitter(agent, self.delivery_queue, settings.approvers, settings.admins,
                                   Holds.open(database_url(settings)))
        self.ingress = Ingress(self.submitter, lambda: self.client, self.replies, self.writer, self.limiter)
        self.run_link = RunLinks(settings.temporal_ui_url, lambda: agent.client.namespace)
        self.audit = AuditLog.open(database_url(settings))
        self.clicks = Clicks(agent, settings.approvers, settings.admins, self.cards, self.audit, self.submitter)
        self.delivery = DeliveryActivity(DiscordDeliverer(
            lambda: self.client, self.limiter, self.replies, self.writer, self.cards, self.run_link,
            blobs=agent.blobs))
        self.delivery_worker = DeliveryWorker(self.delivery_queue, self.delivery.deliver)
        self.client: DurabotClient = None  # type: ignore[assignment]  # set by serve()
        self._background: set[asyncio.Task] = set()
        self._announced = False

    async def serve(self) -> None:
        configure_endpoints(self.settings)
        await self.agent.start()
        log.info(INTENTS_HELP)
        plan = self.settings.discord.shard_plan
        if plan is not None:
            log.info("DISCORD_SHARDS=%s: running %s", self.settings.discord.shards, plan)
        message_content, backoff = True, 1.0
        try:
            while True:
                self.client = make_client(self, plan, message_content=message_content)
                try:
                    async with self.client:
                        try:
                            await self.client.login(self.settings.discord.bot_token or "")
                            await self._connect(self.client)
                        finally:
                            self._stop_live()  # before the client's HTTP session closes
                    return
                except discord.PrivilegedIntentsRequired:
                    if not message_content:
                        raise
                    log.warning(NO_MESSAGE_CONTENT)
                    message_content = False
                except discord.LoginFailure:
                    raise UserError("Discord refused DISCORD_BOT_TOKEN: reset the token in the Developer Portal "
                                    "(Bot > Reset Token) and set it again") from None
                except Exception:  # a broken gateway connection must not end the adapter
                    log.exception("the Discord connection failed; reconnecting in %.0f s", backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 60.0)
        finally:
            self._stop_live()
            for task in list(self._background):
                task.cancel()
            await self.submitter.close()
            await self.delivery_worker.stop()

    def _stop_live(self) -> None:
        for reply in self.replies.all():
            reply.stop_live()

    async def _connect(self, client: DurabotClient) -> None:
        """Stay connected. discord.py reconnects after network errors itself; a malformed gateway
        payload (bad JSON, a dispatch missing fields) escapes it, so we log it and connect again."""
        backoff = 0.5
        while not client.is_closed():
            try:
                await client.connect(reconnect=True)
                return
            except (discord.PrivilegedIntentsRequired, discord.LoginFailure, discord.ConnectionClosed):
                raise
            except Exception:
                if client.is_closed():
                    raise  # the sharded client closes itself on such a failure: serve() starts a new one
                log.exception("unexpected gateway payload or failure; reconnecting in %.1f s", backoff)
                if client.ws is not None:
                    await client.ws.close(code=4000)  # also stops its heartbeat thread
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def on_login(self, client: DurabotClient) -> None:
        # Deliveries need only the REST API, so the worker starts as soon as we are logged in.
        self.delivery_worker.start(self.agent.client)
        if not self._announced and client.application_id is not None:
            self._announced = True
            log.info("invite the bot with: %s", invite_url(client.application_id))
        plan = self.settings.discord.shard_plan
        if plan is not None and not plan.runs_first_shard:
            return  # the commands are the bot's, not a shard's: the replica running shard 0 syncs them
        task = asyncio.create_task(self._sync_commands(client))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _sync_commands(self, client: DurabotClient) -> None:
        try:
            if self.settings.discord.guild_id:
                guild = discord.Object(id=int(self.settings.discord.guild_id))
                client.tree.copy_global_to(guild=guild)
                await client.tree.sync(guild=guild)
                log.info("/durabot synced to guild %s", self.settings.discord.guild_id)
            else:
                await client.tree.sync()
                log.info("/durabot synced globally (Discord may take up to an hour to show it everywhere)")
        except discord.HTTPException as exc:
            log.warning("could not sync /durabot (%s %s); the command may be missing or outdated",
                        exc.status, exc.text)


async def run_discord(settings: Settings, agent: Agent, *, guild_ready_timeout: float = 2.0) -> None:
    """Serve Discord for ``agent`` until cancelled."""
    await DiscordAdapter(settings, agent, guild_ready_timeout=guild_ready_timeout).serve()
