"""The Slack adapter: Bolt app, HTTP endpoint or Socket Mode, and the delivery worker.

Events are submitted to Temporal *before* they are acknowledged (Bolt's process_before_response):
the submission takes tens of milliseconds, far inside Slack's 3 s, and a failed submission answers
500 so Slack retries instead of the message being lost. The message ts is the turn id, so a retry
(or the message/app_mention pair of one message) never starts a second turn. Slow work (placeholder,
live edits) happens after the ack, in the background.

With ``SLACK_CLIENT_ID`` instead of ``SLACK_BOT_TOKEN`` the app is installed in many workspaces through
Bolt's OAuth flow (``GET /slack/install``, ``GET /slack/oauth_redirect``): installations live in a
database (installations.py) and every call acts with its own workspace's token (workspaces.py).
Removing the app from a workspace deletes its installation and ends its conversations.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from aiohttp import web as aioweb
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from agent_core import Agent
from agent_core.settings import Settings
from agent_core.types import DeliveryTarget
from bots.core.audit import AuditLog, Who
from bots.core.budget_gate import Holds, Overridden, override
from bots.core.cache import BoundedCache
from bots.core.delivery import DeliveryActivity
from bots.core.delivery_worker import DeliveryWorker
from bots.core.delivery_worker import delivery_queue as core_delivery_queue
from bots.core.ingress import Submitter
from bots.core.policy import place_of
from bots.core.refs import conversation_prefix
from bots.core.runlink import RunLinks
from bots.core.runs import end_conversations
from bots.core.settings import database_url

from . import approvals, workspaces
from .assistant import AssistantThreads
from .commands import Commands
from .delivery import SlackDeliverer
from .edits import EditScheduler
from .feedback import FeedbackClicks
from .ids import ACTION_PATTERN, FEEDBACK_ACTION, PREFIX, parse_button, parse_conversation_id
from .ingress import BUDGET_ACTION, Ingress
from .installations import Stores
from .limits import StreamBudget, update_window
from .native import StreamLimits
from .stream_records import StreamRecords
from .streaming import LiveStreams
from .web import Connections, SlackWeb, make_client
from .workspaces import ScopedDeliverer, WorkspaceClients

log = logging.getLogger(__name__)


def delivery_queue(settings: Settings) -> str:
    return core_delivery_queue(settings.task_queue, "slack")


class SlackAdapter:
    """Everything ``durabot slack`` runs besides the agent: use start(), then serve_http() or
    connect_socket_mode(), and stop() at the end."""

    def __init__(self, settings: Settings, agent: Agent, *, delivery_task_queue: str | None = None,
                 update_budget: tuple[int, float] | None = None, stream_limits: StreamLimits | None = None,
                 stream_budget: tuple[int, int, float] | None = None) -> None:
        """``settings``: the process's settings, the agent's with this adapter's part as ``settings.slack``
        (a ``SlackSettings``). ``update_budget`` (calls, seconds) overrides the chat.update budget per
        workspace, for a workspace with a raised limit (or a benchmark of latency alone).
        ``stream_limits``: a natively streamed message's size and age limits (tests shorten them);
        ``stream_budget`` (starts and stops, appends, seconds) overrides the streaming budget likewise."""
        settings.slack.check(settings.secret_key)
        self.settings = settings
        self.agent = agent
        self.socket_mode = bool(settings.slack.app_token)
        self.oauth = settings.slack.oauth
        self.stores: Stores | None = None
        self.clients: WorkspaceClients | None = None
        self.connections = Connections()  # every Web API call of this adapter, over kept-alive connections
        if self.oauth:
            self.stores = Stores(str(settings.slack.client_id), database_url(settings), settings.secret_key)
            api_url = settings.slack.api_url
            self.clients = WorkspaceClients(self.stores.installations,
                                            lambda token: make_client(token, api_url, self.connections))
            self.web = SlackWeb(make_client(None, api_url, self.connections), self.clients)
        else:
            self.web = SlackWeb(make_client(settings.slack.bot_token, settings.slack.api_url, self.connections))
        self.task_queue = delivery_task_queue or delivery_queue(settings)
        self._editors: BoundedCache[str, EditScheduler] = BoundedCache(1_000)  # one per workspace
        self._update_budget = update_budget
        self._stream_budget = stream_budget
        self.run_link = RunLinks(settings.temporal_ui_url, lambda: agent.client.namespace)
        self._stream_budgets: BoundedCache[str, StreamBudget] = BoundedCache(1_000)  # one per workspace
        native = settings.slack.streaming_mode == "native"
        self.streams = LiveStreams(agent, self.web, self.editor_for, self.run_link,
                                   budget_for=self.stream_budget if native else None, limits=stream_limits,
                                   records=StreamRecords.open(database_url(settings)))
        self.assistant = AssistantThreads(agent, self.web, settings.slack.suggested_prompts())
        self.delivery = DeliveryActivity(ScopedDeliverer(
            SlackDeliverer(self.web, self.editor_for, self.streams, self.run_link, self.assistant, blobs=agent.blobs)))
        self.delivery_worker = DeliveryWorker(self.task_queue, self.delivery.deliver, max_concurrent_activities=100)
        self.audit = AuditLog.open(database_url(settings))
        self.commands = Commands(agent, settings.admins, self.web.is_workspace_admin, audit=self.audit)
        self.feedback = FeedbackClicks(agent, self.web)
        self.holds = Holds.open(database_url(settings))
        self.submitter = Submitter(agent, self.task_queue, settings.approvers, settings.admins, self.holds)
        self.ingress = Ingress(self.submitter, self.web, self.streams, self.assistant)
        self.team: str = ""
        self._seen = self.ingress.seen  # the messages taken; forgetting one lets its event through again
        self._runner: aioweb.AppRunner | None = None
        self._socket: Any = None
        self._endings: set[asyncio.Task] = set()  # conversations of removed workspaces being ended
        self.app = AsyncApp(
            client=self.web.client,
            signing_secret=settings.slack.signing_secret or "",
            request_verification_enabled=not self.socket_mode,
            process_before_response=True,
            oauth_settings=self._oauth_settings(),
        )
        self._register()

    def _oauth_settings(self) -> AsyncOAuthSettings | None:
        if self.stores is None:
            return None
        slack = self.settings.slack
        return AsyncOAuthSettings(
            client_id=slack.client_id, client_secret=slack.client_secret, scopes=slack.scope_list,
            redirect_uri=slack.redirect_uri, install_page_rendering_enabled=False,
            installation_store=self.stores.installations, installation_store_bot_only=True,
            state_store=self.stores.states, logger=log,
        )

    def editor_for(self, team: str) -> EditScheduler:
        editor = self._editors.get(team)
        if editor is None:
            if self._update_budget:
                limit, window = self._update_budget
                editor = EditScheduler(self.web.for_team(team), update_window(limit, window))
            else:
                editor = EditScheduler(self.web.for_team(team))
            self._editors[team] = editor
        return editor

    def stream_budget(self, team: str) -> StreamBudget:
        budget = self._stream_budgets.get(team)
        if budget is None:
            if self._stream_budget:
                tier2, appends, window = self._stream_budget
                budget = StreamBudget(tier2, tier2, appends, window)
            else:
                budget = StreamBudget()
            self._stream_budgets[team] = budget
        return budget

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        if self.stores is not None:  # each workspace's bot is known from its installation, per request
            await self.stores.prepare()
            self.delivery_worker.start(self.agent.client)
            return
        auth = await self.web.call("auth.test")
        self.team = str(auth.get("team_id") or "")
        self.ingress.identify(auth.get("user_id"), auth.get("bot_id"), self.team)
        self.commands.base_url = str(auth.get("url") or "")
        self.delivery_worker.start(self.agent.client)

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for task in list(self._endings):
            task.cancel()
        await asyncio.gather(*self._endings, return_exceptions=True)
        await self.streams.aclose()
        await self.assistant.aclose()
        await self.submitter.close()
        await self.delivery_worker.stop()
        for team in self._editors:
            editor = self._editors.get(team)
            if editor is not None:
                await editor.aclose()
        if self.stores is not None:
            self.stores.close()
        await self.connections.aclose()

    async def serve_http(self, port: int | None = None, host: str = "0.0.0.0") -> int:
        """Serve ``POST /slack/events`` (events, interactivity, slash commands), and when installed in
        many workspaces ``GET /slack/install`` and ``GET /slack/oauth_redirect``; returns the port."""
        app = aioweb.Application(client_max_size=1024 * 1024)
        app.router.add_post("/slack/events", self.handle_http)
        flow = self.app.oauth_flow
        if flow is not None:
            app.router.add_get(flow.install_path, self.handle_install)
            app.router.add_get(flow.redirect_uri_path, self.handle_install)
        app.router.add_get("/healthz", _healthz)
        self._runner = aioweb.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = aioweb.TCPSite(self._runner, host, self.settings.http_port if port is None else port)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def connect_socket_mode(self) -> None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        self._socket = AsyncSocketModeHandler(self.app, self.settings.slack.app_token)
        await self._socket.connect_async()

    async def handle_http(self, request: aioweb.Request) -> aioweb.Response:
        raw = await request.read()
        body = raw.decode("utf-8", errors="replace")
        headers = {k.lower(): [v] for k, v in request.headers.items()}
        try:
            bolt_req = AsyncBoltRequest(body=body, query=request.query_string, headers=headers)
        except Exception:  # Bolt could not parse it; say 401 for forgeries, 400 for garbage
            if not self._signed(body, request.headers):
                return aioweb.Response(status=401, text="invalid signature")
            return aioweb.Response(status=400, text="malformed payload")
        with workspaces.request():
            resp = await self.app.async_dispatch(bolt_req)
        if resp.status == 404:  # nothing of ours matched: a malformed or unsupported payload
            return aioweb.Response(status=400, text="unsupported payload")
        return _to_aiohttp(resp)

    async def handle_install(self, request: aioweb.Request) -> aioweb.Response:
        """The install link (to Slack's authorize page, with a fresh state) and Slack's redirect back
        (state checked and consumed, code exchanged, installation saved): Bolt's OAuth flow."""
        flow = self.app.oauth_flow
        assert flow is not None
        headers = {k.lower(): [v] for k, v in request.headers.items()}
        bolt_req = AsyncBoltRequest(body="", query=request.query_string, headers=headers)
        if request.path == flow.install_path:
            return _to_aiohttp(await flow.handle_installation(bolt_req))
        return _to_aiohttp(await flow.handle_callback(bolt_req))

    def _signed(self, body: str, headers: Any) -> bool:
        verifier = SignatureVerifier(self.settings.slack.signing_secret or "")
        return verifier.is_valid(body, headers.get("X-Slack-Request-Timestamp", ""),
                                 headers.get("X-Slack-Signature", ""))

    # ---------------------------------------------------------------- listeners
    def _register(self) -> None:
        self.app.event("app_mention")(self._on_message)
        self.app.event("message")(self._on_message)
        self.app.event("assistant_thread_started")(self._on_thread_started)
        self.app.event("assistant_thread_context_changed")(self._on_context_changed)
        self.app.event("app_home_opened")(self._on_home_opened)
        self.app.event("app_context_changed")(self._on_app_context_changed)
        self.app.action(ACTION_PATTERN)(self._on_click)
        self.app.action(re.compile(rf"^{BUDGET_ACTION}:"))(self._on_budget_click)
        self.app.action(FEEDBACK_ACTION)(self._on_feedback)
        self.app.view(FEEDBACK_ACTION)(self._on_feedback_form)
        self.app.command("/durabot")(self._on_command)
        if self.oauth:
            self.app.use(workspaces.scope_middleware)  # every listener acts as its request's workspace
            self.app.event("app_uninstalled")(self._on_uninstalled)
            self.app.event("tokens_revoked")(self._on_uninstalled)

    async def _on_message(self, event: dict, body: dict, request: AsyncBoltRequest) -> None:
        retried = bool(request.headers.get("x-slack-retry-num")) if request is not None else False
        await self.ingress.on_message(event, body, retried)

    async def _on_thread_started(self, event: dict, body: dict) -> None:
        await self.assistant.on_thread_started(event, str(body.get("team_id") or self.team))

    async def _on_context_changed(self, event: dict, body: dict) -> None:
        await self.assistant.on_context_changed(event, str(body.get("team_id") or self.team))

    async def _on_home_opened(self, event: dict, body: dict) -> None:
        await self.assistant.on_home_opened(event, str(body.get("team_id") or self.team))

    async def _on_app_context_changed(self, event: dict, body: dict) -> None:
        await self.assistant.on_app_context_changed(event, str(body.get("team_id") or self.team))

    async def _on_click(self, ack: Any, body: dict, action: dict) -> None:
        await ack()
        user = ((body.get("user") or {}).get("id")) or ""
        channel = ((body.get("channel") or {}).get("id")) or ""
        message = body.get("message") or {}
        thread = message.get("thread_ts") or None
        button = parse_button(str(action.get("action_id") or ""), str(action.get("value") or ""))
        if not user or not channel:
            return
        if button is None:
            await self.web.ephemeral(channel, user, "This button is not one I understand; nothing changed.", thread)
            return
        if self.oauth and approvals.foreign(button, team := workspaces.current_team()):
            log.warning("click on a button of %s from workspace %s refused", button.conversation_id, team)
            await self.web.ephemeral(channel, user, approvals.FOREIGN, thread)
            return
        if button.decision == "show":
            problem = await approvals.show_arguments(self.agent, self.web, button, str(body.get("trigger_id") or ""))
        else:
            user_team = str((body.get("user") or {}).get("team_id") or (body.get("team") or {}).get("id") or "")
            who = Who(user, (body.get("user") or {}).get("name") or (body.get("user") or {}).get("username"))
            problem = await approvals.decide(self.agent, self.web, button, user, user_team, self.settings,
                                             audit=self.commands.recorder(who, button.conversation_id))
        if problem:
            await self.web.ephemeral(channel, user, problem, thread)

    async def _on_budget_click(self, ack: Any, body: dict, action: dict) -> None:
        """"Ask an admin to allow it": an admin's click lets the held message run past its budget."""
        await ack()
        user = ((body.get("user") or {}).get("id")) or ""
        channel = ((body.get("channel") or {}).get("id")) or ""
        message = body.get("message") or {}
        hold_id, _, conversation_id = str(action.get("value") or "").partition("|")
        if not user or not channel or not hold_id:
            return
        who = Who(user, (body.get("user") or {}).get("name") or (body.get("user") or {}).get("username"))
        outcome, hold = await override(self.ingress.submitter, self.holds, hold_id, user,
                                       lambda held: self.commands.is_admin(user, place_of(held)),
                                       self.commands.recorder(who, conversation_id))
        thread = message.get("thread_ts") or None
        if outcome is Overridden.NOT_ADMIN:
            await self.web.ephemeral(channel, user, ":no_entry: Only admins can let a turn run past its budget. "
                                     "Nothing changed.", thread)
        elif outcome is Overridden.GONE:
            await self.web.ephemeral(channel, user, ":information_source: This message was already let through.",
                                     thread)
        elif hold is not None:
            ref = parse_conversation_id(hold.conversation_id)
            if message.get("ts"):
                done = f":white_check_mark: <@{user}> let this run past the budget."
                await self.web.update(channel, str(message["ts"]), done,
                                      blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": done}}])
            if ref is not None:
                self.streams.start(ref, hold.message_id)
    async def _on_feedback(self, ack: Any, body: dict, action: dict) -> None:
        await ack()
        await self.feedback.on_click(body, action)

    async def _on_feedback_form(self, ack: Any, body: dict, view: dict) -> None:
        await ack()  # closes the form
        await self.feedback.on_submit(body, view)

    async def _on_command(self, ack: Any, command: dict) -> None:
        team = str(command.get("team_id") or self.team)
        user = str(command.get("user_id") or "")
        channel = str(command.get("channel_id") or "")
        text = await self.commands.answer(str(command.get("text") or ""), team, user, channel,
                                          user_name=command.get("user_name"))
        await ack(text=text, response_type="ephemeral")

    async def _on_uninstalled(self, event: dict, body: dict, context: Any) -> None:
        """The app was removed from a workspace (or its bot token revoked): forget the installation at
        once, then end the workspace's conversations after the ack (there may be many)."""
        team = str(context.team_id or body.get("team_id") or "")
        if not team or self.stores is None or self.clients is None:
            return
        if event.get("type") == "tokens_revoked" and not (event.get("tokens") or {}).get("bot"):
            return  # only user tokens: the bot still works (and this app asks for none)
        await self.stores.installations.async_delete_all(enterprise_id=context.enterprise_id, team_id=team)
        self.clients.forget(team)
        log.info("removed from workspace %s (%s): installation deleted, ending its conversations",
                 team, event.get("type"))
        task = asyncio.create_task(self._end_workspace(team), name=f"slack-uninstall-{team}")
        self._endings.add(task)
        task.add_done_callback(self._endings.discard)

    async def _end_workspace(self, team: str) -> None:
        try:
            ended = await end_conversations(self.agent, conversation_prefix(PREFIX, team))
            log.info("workspace %s: %d conversation(s) asked to end", team, ended)
        except Exception:  # the installation is gone either way; its conversations then idle out
            log.exception("ending the conversations of workspace %s failed", team)


def _to_aiohttp(resp: Any) -> aioweb.Response:
    out = aioweb.Response(status=resp.status, body=resp.body.encode() if resp.body else b"")
    for name, values in resp.headers.items():
        if name.lower() not in ("content-length",):
            for v in values:
                out.headers.add(name, v)
    return out


async def _healthz(_request: aioweb.Request) -> aioweb.Response:
    return aioweb.Response(text="ok")


async def run_slack(settings: Settings, agent: Agent) -> None:
    """Serve Slack until cancelled: Socket Mode when SLACK_APP_TOKEN is set, else HTTP."""
    adapter = SlackAdapter(settings, agent)
    await adapter.start()
    try:
        if adapter.socket_mode:
            await adapter.connect_socket_mode()
            log.info("Slack adapter connected in Socket Mode; deliveries on task queue %r", adapter.task_queue)
        else:
            port = await adapter.serve_http()
            log.info("Slack adapter listening on :%d/slack/events; deliveries on task queue %r", port,
                     adapter.task_queue)
            if adapter.oauth:
                log.info("installed in many workspaces: install link :%d/slack/install", port)
        await asyncio.Event().wait()
    finally:
        await adapter.stop()
