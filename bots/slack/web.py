"""The Slack Web API as the adapter uses it: one place that maps failures and keeps budgets.

The slack_sdk client is built without its own retry handlers: a retried chat.postMessage whose first
response was lost would post twice. Retries belong to Temporal (deliveries) and to the edit scheduler
(live text); messages carry metadata keys so a retry can find what an earlier attempt posted.

The adapter's clients share one pool of kept-alive connections (``Connections``): slack_sdk alone opens
a new connection (on Slack, a TLS handshake) for every call, which was half of the CPU the adapter
spent on a streamed answer's three calls. An idle connection is closed after ``KEEPALIVE`` seconds,
well inside the idle timeouts of Slack's and common proxies' load balancers, so a call rarely finds
its connection closed by the other side; when it does it fails like any call that got no answer
(retried by Temporal or by the next live batch, never by the client).

Finding those messages again reads the thread, and a thread can be long: the lookup follows
``conversations.replies``' cursor to the end, and starts at ``oldest=<the turn's message ts>``.
Everything the bot posts for a turn (placeholder, parts, approval cards) comes after the message that
started it, so the lookup reads only that turn's tail of the thread, usually one page however long
the thread is. This matters beyond correctness: Slack caps this method hard for some apps (Tier 3, or
one call a minute and 15 messages a page for apps distributed outside the Marketplace). Keeping the
message ids durably instead (in the workflow or a store) would add a write per message for a read
that retries and restarts alone need; the metadata key on the message is already durable.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.metrics import platform_api_calls_total
from bots.core.cache import BoundedCache
from bots.core.ratelimit import rate_wait

from . import workspaces
from .limits import PostBudgets
from .render import metadata, metadata_key
from .workspaces import WorkspaceClients

log = logging.getLogger(__name__)

_TOKEN_GONE = {"invalid_auth", "token_revoked", "account_inactive", "not_authed"}
_RETRYABLE_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
MAX_WAIT = 20.0  # longer than this for a budget: give the slot back to Temporal's retry instead
ADMIN_USERS = 10_000
ADMIN_TTL = 300.0  # admin rights change: ask users.info again after this many seconds
_TS = re.compile(r"^\d+\.\d+$")
PAGE = 200  # messages per conversations.replies / history page (Slack's advice: at most 200)
MAX_PAGES = 50  # a lookup reads at most this many pages (10,000 messages after the turn's message)


class SlackCallError(Exception):
    """A Web API call failed. ``retryable`` says whether trying again later can help."""

    def __init__(self, method: str, error: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(f"Slack {method} failed: {error}" + (f" (HTTP {status})" if status else ""))
        self.method = method
        self.error = error
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return (self.status is None or self.status == 429 or self.status >= 500
                or self.error in _RETRYABLE_ERRORS)


KEEPALIVE = 10.0  # seconds an idle Web API connection is kept open
CONNECTIONS = 100  # connections open at once, over all workspaces


class Connections:
    """One pool of kept-alive Web API connections for every client of an adapter (each call carries its
    own token, so one pool serves all workspaces). Bound to the event loop it was first used in: a
    call from another loop gets a pool of its own. ``aclose`` at the adapter's stop."""

    def __init__(self, limit: int = CONNECTIONS, keepalive: float = KEEPALIVE) -> None:
        self.limit, self.keepalive = limit, keepalive
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def session(self, timeout: float) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=timeout),
                connector=aiohttp.TCPConnector(limit=self.limit, keepalive_timeout=self.keepalive))
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed and self._loop is asyncio.get_running_loop():
            await session.close()


class MeteredWebClient(AsyncWebClient):
    """Counts every Web API call by method: the adapter's own, and those Bolt and Socket Mode make
    through the same client (``auth.test``, ``apps.connections.open``). With ``connections``, its calls
    go over that pool's kept-alive connections."""

    def __init__(self, *args: Any, connections: Connections | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections = connections

    async def api_call(self, api_method: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        platform_api_calls_total.labels(platform="slack", method=api_method).inc()
        if self.connections is not None:
            self.session = self.connections.session(self.timeout)
        return await super().api_call(api_method, *args, **kwargs)


_TOKEN = re.compile(r"\b(xox[a-z]|xapp)-[A-Za-z0-9.-]+")


class _NoTokens(logging.Filter):
    """slack_sdk logs whole request and response bodies at DEBUG, and an installation's
    oauth.v2.access answer is a new bot token: tokens are masked before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "xox" in message or "xapp" in message:
            record.msg, record.args = _TOKEN.sub(r"\1-***", message), None
        return True


SDK_LOG = logging.getLogger(__name__ + ".sdk")  # the logger of every client made here (and Bolt's copies)
SDK_LOG.addFilter(_NoTokens())


def make_client(token: str | None, api_url: str | None, connections: Connections | None = None) -> AsyncWebClient:
    """The adapter's kind of client: metered, no retries; ``connections``: the pool its calls go over
    (None: a connection of its own for each call)."""
    base = (api_url or "https://slack.com/api/").rstrip("/") + "/"
    return MeteredWebClient(token=token, base_url=base, retry_handlers=[], timeout=15, logger=SDK_LOG,
                            connections=connections)


def _form(value: Any) -> Any:
    return ("true" if value else "false") if isinstance(value, bool) else value


class SlackWeb:
    """The Web API of one workspace (``client``'s token), or, with ``clients``, of whichever installed
    workspace the work at hand belongs to (see workspaces.py). Budgets and the admin cache are kept
    per workspace either way."""

    def __init__(self, client: AsyncWebClient, clients: WorkspaceClients | None = None,
                 team: str | None = None) -> None:
        self.client = client  # with clients: Bolt's token-less client, never used for a call here
        self.clients = clients
        self.team = team  # a view bound to one workspace (for_team), whatever the scope says
        self._admins: BoundedCache[Any, bool] = BoundedCache(ADMIN_USERS, ttl=ADMIN_TTL)
        self.post_budgets = PostBudgets()

    def for_team(self, team: str) -> SlackWeb:
        """The same Web API bound to ``team``: for work that outlives any scope (a workspace's edit
        loop). Budgets and caches are shared with this one."""
        view = copy.copy(self)
        view.team = team
        return view

    def _team(self) -> str:
        if self.team is not None:
            return self.team
        ws = workspaces.current()
        return ws.team if ws is not None else ""

    def _key(self, name: str) -> Any:
        """A budget's or a cache's key: per workspace when serving many (one alone needs no team)."""
        return name if self.clients is None else (self._team(), name)

    async def _client_for(self, method: str) -> AsyncWebClient:
        if self.clients is None:
            return self.client
        team = self._team()
        try:
            return await self.clients.client(team)
        except workspaces.NotInstalled:
            # Logged without any token: only the workspace is named.
            raise SlackCallError(method, workspaces.NOT_INSTALLED, 200) from None
        except workspaces.StoreUnavailable as exc:
            raise SlackCallError(method, f"installations database unavailable ({exc})", 503) from None

    async def file_token(self) -> str:
        """The bot token that may read this workspace's files (``url_private_download``)."""
        return (await self._client_for("files.download")).token or ""

    async def call(self, method: str, **params: Any) -> dict:
        # Writes go as JSON (blocks, metadata, views, prompt lists); reads as form fields, which every
        # method accepts.
        as_json = method.startswith(("chat.", "views.", "assistant."))
        client = await self._client_for(method)
        try:
            if as_json:
                resp = await client.api_call(method, json=params)
            else:
                resp = await client.api_call(method, params={k: _form(v) for k, v in params.items()})
        except SlackApiError as exc:
            r = exc.response
            if self.clients is not None and r.get("error") in _TOKEN_GONE:
                self.clients.forget(self._team())  # read the store again next time
            retry_after = r.headers.get("retry-after") or r.headers.get("Retry-After")
            raise SlackCallError(
                method, str(r.get("error") or "error"), r.status_code, float(retry_after) if retry_after else None
            ) from None
        except (TimeoutError, SlackRequestError, aiohttp.ClientError, OSError) as exc:
            raise SlackCallError(method, f"no answer ({type(exc).__name__})") from None
        return resp.data if isinstance(resp.data, dict) else {}

    async def post(self, channel: str, thread_ts: str, text: str, *, key: str | None = None,
                   blocks: list[dict] | None = None, max_wait: float = MAX_WAIT) -> str:
        """Post a message (in the thread when ``thread_ts``); returns its ts. Waits for the channel budget."""
        await self.wait_post_budget(channel, max_wait)
        budget = self.post_budgets.get(self._key(channel))
        budget.take()
        params: dict[str, Any] = {"channel": channel, "text": text, "unfurl_links": False, "unfurl_media": False}
        if thread_ts:
            params["thread_ts"] = thread_ts
        if key:
            params["metadata"] = metadata(key)
        if blocks is not None:
            params["blocks"] = blocks
        try:
            data = await self.call("chat.postMessage", **params)
        except SlackCallError as exc:
            if exc.status == 429:
                budget.pause(exc.retry_after or 1.0)
            raise
        return str(data.get("ts") or "")

    async def wait_post_budget(self, channel: str, max_wait: float = MAX_WAIT) -> float:
        """Wait until the channel's budget allows a post; returns the seconds waited. Raises a 429
        SlackCallError instead of waiting longer than ``max_wait``."""
        budget = self.post_budgets.get(self._key(channel))
        waited = 0.0
        while (wait := budget.delay()) > 0:
            if wait > max_wait:
                raise SlackCallError("chat.postMessage", "channel budget exhausted", 429, wait)
            await rate_wait(wait, "slack")
            waited += wait
        return waited

    async def update(self, channel: str, ts: str, text: str, *, key: str | None = None,
                     blocks: list[dict] | None = None) -> None:
        """chat.update without any budget: call it through the EditScheduler only."""
        params: dict[str, Any] = {"channel": channel, "ts": ts, "text": text}
        params["blocks"] = blocks if blocks is not None else []
        if key:
            params["metadata"] = metadata(key)
        await self.call("chat.update", **params)

    # ---------------------------------------------------------------- native streaming
    # No budget here either: bots/slack/native.py keeps each workspace's StreamBudget.
    async def start_stream(self, channel: str, thread_ts: str, chunks: list[dict], *, team: str = "",
                           user: str = "") -> str:
        """chat.startStream: a new streamed reply in the thread; returns its ts. The recipient (who
        asked, and their workspace) is required outside DMs."""
        params: dict[str, Any] = {"channel": channel, "thread_ts": thread_ts, "chunks": chunks}
        if team and user:
            params["recipient_team_id"], params["recipient_user_id"] = team, user
        data = await self.call("chat.startStream", **params)
        return str(data.get("ts") or "")

    async def append_stream(self, channel: str, ts: str, chunks: list[dict]) -> None:
        await self.call("chat.appendStream", channel=channel, ts=ts, chunks=chunks)

    async def stop_stream(self, channel: str, ts: str, chunks: list[dict] | None = None, *,
                          key: str | None = None, payload: dict | None = None,
                          blocks: list[dict] | None = None) -> None:
        """chat.stopStream; ``key`` (and ``payload``) go into the message metadata, which makes the
        message findable by the idempotency lookup from now on."""
        params: dict[str, Any] = {"channel": channel, "ts": ts}
        if chunks:
            params["chunks"] = chunks
        if key:
            params["metadata"] = metadata(key, payload)
        if blocks:
            params["blocks"] = blocks
        await self.call("chat.stopStream", **params)

    async def ephemeral(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> None:
        params: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if thread_ts:
            params["thread_ts"] = thread_ts
        try:
            await self.call("chat.postEphemeral", **params)
        except SlackCallError as exc:  # a refusal that cannot be shown changes nothing: log only
            log.warning("could not show an ephemeral message to %s in %s: %s", user, channel, exc)

    async def thread_messages(self, channel: str, thread_ts: str, limit: int = PAGE, *,
                              oldest: str | None = None, pages: int = 1) -> list[dict]:
        """The thread's messages, oldest first (for a DM's main conversation, the DM's history, newest
        first), at most ``pages`` pages of ``limit``; only those after ``oldest`` when given."""
        method = "conversations.replies" if thread_ts else "conversations.history"
        params: dict[str, Any] = {"channel": channel, "limit": limit, "include_all_metadata": True}
        if thread_ts:
            params["ts"] = thread_ts
        if oldest and _TS.match(oldest):  # a turn id that is not a message ts narrows nothing
            params["oldest"] = oldest
        out: list[dict] = []
        cursor = ""
        for _ in range(pages):
            data = await self.call(method, **params, **({"cursor": cursor} if cursor else {}))
            out.extend(m for m in data.get("messages") or [] if isinstance(m, dict))
            cursor = str((data.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                break
        else:
            if pages > 1:  # a lookup that may miss what it looks for: worth knowing about
                log.warning("%s of %s/%s: stopped after %d pages", method, channel, thread_ts, pages)
        return out

    async def find_keys(self, channel: str, thread_ts: str, oldest: str | None = None) -> dict[str, str]:
        """Our own messages in a thread, by metadata key -> ts: what earlier attempts already posted.

        ``oldest`` (the ts of the message that started the turn) skips the thread's earlier messages."""
        found: dict[str, str] = {}
        for m in await self.thread_messages(channel, thread_ts, oldest=oldest, pages=MAX_PAGES):
            key = metadata_key(m)
            if key and m.get("ts"):
                found.setdefault(key, str(m["ts"]))
        return found

    async def upload(self, channel: str, thread_ts: str, name: str, data: bytes) -> str:
        """Share a file in the thread by Slack's external upload flow; returns the file id."""
        got = await self.call("files.getUploadURLExternal", filename=name, length=len(data))
        url, file_id = str(got.get("upload_url") or ""), str(got.get("file_id") or "")
        if not url or not file_id:
            raise SlackCallError("files.getUploadURLExternal", "no upload_url in the answer")
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
                async with http.post(url, data=data) as resp:
                    if resp.status != 200:
                        raise SlackCallError("file upload", f"HTTP {resp.status}", resp.status)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise SlackCallError("file upload", f"no answer ({type(exc).__name__})") from None
        await self.wait_post_budget(channel)  # the shared file is a message in the channel
        self.post_budgets.get(channel).take()
        params: dict[str, Any] = {"files": json.dumps([{"id": file_id, "title": name}]), "channel_id": channel}
        if thread_ts:
            params["thread_ts"] = thread_ts
        await self.call("files.completeUploadExternal", **params)
        return file_id

    async def shared_files(self, channel: str, thread_ts: str, oldest: str | None = None) -> set[tuple[str, int]]:
        """(name, size) of files bots shared in a thread after ``oldest``: what earlier attempts uploaded."""
        found: set[tuple[str, int]] = set()
        for m in await self.thread_messages(channel, thread_ts, oldest=oldest, pages=MAX_PAGES):
            if not m.get("bot_id"):
                continue
            for f in m.get("files") or ():
                if isinstance(f, dict) and isinstance(f.get("size"), int):
                    found.add((str(f.get("name") or ""), f["size"]))
        return found

    async def is_workspace_admin(self, user: str) -> bool:
        """Whether Slack says ``user`` administers the workspace at hand (asked with its own token)."""
        key = self._key(user)
        cached = self._admins.get(key)
        if cached is not None:
            return cached
        try:
            data = await self.call("users.info", user=user)
        except SlackCallError as exc:
            log.warning("users.info for %s failed: %s; treating as not an admin", user, exc)
            return False
        u = data.get("user") or {}
        admin = bool(u.get("is_admin") or u.get("is_owner") or u.get("is_primary_owner"))
        self._admins[key] = admin
        return admin
