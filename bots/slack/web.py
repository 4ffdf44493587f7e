"""The Slack Web API as the adapter uses it: one place that maps failures and keeps budgets.

The slack_sdk client is built without its own retry handlers: a retried chat.postMessage whose first
response was lost would post twice. Retries belong to Temporal (deliveries) and to the edit scheduler
(live text); messages carry metadata keys so a retry can find what an earlier attempt posted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.metrics import platform_api_calls_total, rate_limit_wait_seconds_total
from bots.common.cache import BoundedCache

from .limits import TokenBucket
from .render import metadata, metadata_key

log = logging.getLogger(__name__)

_RETRYABLE_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
MAX_WAIT = 20.0  # longer than this for a budget: give the slot back to Temporal's retry instead
ADMIN_USERS = 10_000
ADMIN_TTL = 300.0  # admin rights change: ask users.info again after this many seconds


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


class MeteredWebClient(AsyncWebClient):
    """Counts every Web API call by method: the adapter's own, and those Bolt and Socket Mode make
    through the same client (``auth.test``, ``apps.connections.open``)."""

    async def api_call(self, api_method: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        platform_api_calls_total.labels(platform="slack", method=api_method).inc()
        return await super().api_call(api_method, *args, **kwargs)


def make_client(token: str, api_url: str | None) -> AsyncWebClient:
    base = (api_url or "https://slack.com/api/").rstrip("/") + "/"
    return MeteredWebClient(token=token, base_url=base, retry_handlers=[], timeout=15)


async def rate_wait(seconds: float) -> None:
    """Sleep because of a rate budget or a Retry-After, and count it."""
    start = time.monotonic()
    try:
        await asyncio.sleep(seconds)
    finally:
        rate_limit_wait_seconds_total.labels(platform="slack").inc(time.monotonic() - start)


def _form(value: Any) -> Any:
    return ("true" if value else "false") if isinstance(value, bool) else value


class SlackWeb:
    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._post_budgets: dict[str, TokenBucket] = {}
        self._admins: BoundedCache[str, bool] = BoundedCache(ADMIN_USERS, ttl=ADMIN_TTL)

    async def call(self, method: str, **params: Any) -> dict:
        # Writes go as JSON (blocks, metadata); reads as form fields, which every method accepts.
        as_json = method.startswith("chat.")
        try:
            if as_json:
                resp = await self.client.api_call(method, json=params)
            else:
                resp = await self.client.api_call(method, params={k: _form(v) for k, v in params.items()})
        except SlackApiError as exc:
            r = exc.response
            retry_after = r.headers.get("retry-after") or r.headers.get("Retry-After")
            raise SlackCallError(
                method, str(r.get("error") or "error"), r.status_code, float(retry_after) if retry_after else None
            ) from None
        except (TimeoutError, SlackRequestError, aiohttp.ClientError, OSError) as exc:
            raise SlackCallError(method, f"no answer ({type(exc).__name__})") from None
        return resp.data if isinstance(resp.data, dict) else {}

    def post_budget(self, channel: str) -> TokenBucket:
        budget = self._post_budgets.get(channel)
        if budget is None:
            budget = self._post_budgets[channel] = TokenBucket()
        return budget

    async def post(self, channel: str, thread_ts: str, text: str, *, key: str | None = None,
                   blocks: list[dict] | None = None, max_wait: float = MAX_WAIT) -> str:
        """Post a message (in the thread when ``thread_ts``); returns its ts. Waits for the channel budget."""
        budget = self.post_budget(channel)
        while (wait := budget.delay()) > 0:
            if wait > max_wait:
                raise SlackCallError("chat.postMessage", "channel budget exhausted", 429, wait)
            await rate_wait(wait)
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

    async def update(self, channel: str, ts: str, text: str, *, key: str | None = None,
                     blocks: list[dict] | None = None) -> None:
        """chat.update without any budget: call it through the EditScheduler only."""
        params: dict[str, Any] = {"channel": channel, "ts": ts, "text": text}
        params["blocks"] = blocks if blocks is not None else []
        if key:
            params["metadata"] = metadata(key)
        await self.call("chat.update", **params)

    async def ephemeral(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> None:
        params: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if thread_ts:
            params["thread_ts"] = thread_ts
        try:
            await self.call("chat.postEphemeral", **params)
        except SlackCallError as exc:  # a refusal that cannot be shown changes nothing: log only
            log.warning("could not show an ephemeral message to %s in %s: %s", user, channel, exc)

    async def thread_messages(self, channel: str, thread_ts: str, limit: int = 200) -> list[dict]:
        """The thread's messages (or, for a DM's main conversation, the DM's recent history)."""
        if thread_ts:
            data = await self.call("conversations.replies", channel=channel, ts=thread_ts, limit=limit,
                                   include_all_metadata=True)
        else:
            data = await self.call("conversations.history", channel=channel, limit=limit, include_all_metadata=True)
        messages = data.get("messages") or []
        return [m for m in messages if isinstance(m, dict)]

    async def find_keys(self, channel: str, thread_ts: str) -> dict[str, str]:
        """Our own messages in a thread, by metadata key -> ts: what earlier attempts already posted."""
        found: dict[str, str] = {}
        for m in await self.thread_messages(channel, thread_ts):
            key = metadata_key(m)
            if key and m.get("ts"):
                found.setdefault(key, str(m["ts"]))
        return found

    async def is_workspace_admin(self, user: str) -> bool:
        cached = self._admins.get(user)
        if cached is not None:
            return cached
        try:
            data = await self.call("users.info", user=user)
        except SlackCallError as exc:
            log.warning("users.info for %s failed: %s; treating as not an admin", user, exc)
            return False
        u = data.get("user") or {}
        admin = bool(u.get("is_admin") or u.get("is_owner") or u.get("is_primary_owner"))
        self._admins[user] = admin
        return admin
