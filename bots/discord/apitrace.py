"""Counting Discord REST calls and 429 waits, from one hook on discord.py's HTTP session.

discord.py sends every REST request, interaction callbacks and follow-ups included, through one
aiohttp session, which accepts a ``TraceConfig`` (``Client(http_trace=...)``). Each request that
leaves (a retry after a 429 too) counts once in ``durabot_platform_api_calls_total``, by a short route
name; a 429 that discord.py waits out before retrying adds its Retry-After to
``durabot_rate_limit_wait_seconds_total``. The gateway WebSocket is not a REST call and is not counted.

discord.py's own pre-emptive bucket waits (X-RateLimit-Remaining at 0) are not visible here; the
adapter's ``ChannelLimiter`` keeps sends and edits under those buckets, and counts its own waits.

The same hook is where the process's global pace applies (``api_trace(pacer)``, see
bots/discord/ratelimit.py): a request start waits for the pacer before it leaves, which covers every
shard, channel and retry at one point; a 429 that Discord marks global pauses the pacer for its
Retry-After. Interaction responses and follow-ups skip the pacer (``PACED`` says which routes wait).
"""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace
from typing import Any

import aiohttp
import discord
from yarl import URL

from agent_core.metrics import platform_api_calls_total, rate_limit_wait_seconds_total
from bots.core.ratelimit import Pacer

log = logging.getLogger(__name__)

__all__ = ["api_trace", "paced", "route_name"]

_ID = r"[^/]+"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(f"^{p}$"), name) for m, p, name in [
        ("POST", rf"/channels/{_ID}/messages", "create_message"),
        ("GET", rf"/channels/{_ID}/messages", "get_messages"),
        ("GET", rf"/channels/{_ID}/messages/{_ID}", "get_message"),
        ("PATCH", rf"/channels/{_ID}/messages/{_ID}", "edit_message"),
        ("DELETE", rf"/channels/{_ID}/messages/{_ID}", "delete_message"),
        ("POST", rf"/channels/{_ID}/messages/{_ID}/threads", "create_thread"),
        ("POST", rf"/channels/{_ID}/typing", "typing"),
        ("GET", rf"/channels/{_ID}", "get_channel"),
        ("POST", rf"/interactions/{_ID}/{_ID}/callback", "interaction_callback"),
        ("POST", rf"/webhooks/{_ID}/{_ID}", "followup_message"),
        ("PATCH", rf"/webhooks/{_ID}/{_ID}/messages/@original", "edit_original_response"),
        ("PATCH", rf"/webhooks/{_ID}/{_ID}/messages/{_ID}", "edit_followup"),
        ("PUT", rf"/applications/{_ID}/commands", "sync_commands"),
        ("PUT", rf"/applications/{_ID}/guilds/{_ID}/commands", "sync_commands"),
        ("GET", r"/users/@me", "get_me"),
        ("GET", r"/oauth2/applications/@me", "get_application"),
        ("GET", r"/gateway(/bot)?", "get_gateway"),
    ]
]


def route_name(method: str, path: str) -> str:
    """A short, bounded name for a REST call, ``path`` relative to the API base ("other" if unknown)."""
    method = method.upper()
    for m, pattern, name in _ROUTES:
        if m == method and pattern.match(path):
            return name
    return "other"


# Discord: "Interaction endpoints are not bound to the bot's Global Rate Limit" (the callback and the
# interaction's webhook: follow-ups and edits of the original response). The bot uses no other webhook.
UNPACED = frozenset({"interaction_callback", "followup_message", "edit_original_response", "edit_followup"})


def paced(method: str, path: str) -> bool:
    """Whether a REST call counts against (and waits for) the global limit."""
    return route_name(method, path) not in UNPACED


def _api_path(url: URL) -> str | None:
    """The path after discord.py's API base (``Route.BASE``), or None for anything else (the gateway)."""
    base = URL(discord.http.Route.BASE)
    if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
        return None
    prefix = base.path.rstrip("/")
    if not url.path.startswith(prefix + "/"):
        return None
    return url.path[len(prefix):]


def _count(method: str, path: str) -> None:
    platform_api_calls_total.labels(platform="discord", method=route_name(method, path)).inc()


def _retry_after(resp: aiohttp.ClientResponse, data: Any) -> float:
    """Seconds a 429 asks to wait: the body's retry_after, else the headers' (0 if none)."""
    candidates = [data.get("retry_after") if isinstance(data, dict) else None,
                  resp.headers.get("X-RateLimit-Reset-After"), resp.headers.get("Retry-After")]
    for value in candidates:
        try:
            if value is not None:
                return max(0.0, float(value))
        except (TypeError, ValueError):
            continue
    return 0.0


async def _body(resp: aiohttp.ClientResponse) -> Any:
    # aiohttp keeps the body it read, so discord.py reads the same bytes after us.
    try:
        return await resp.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return None


def _global(resp: aiohttp.ClientResponse, data: Any) -> bool:
    if resp.headers.get("X-RateLimit-Global", "").lower() == "true":
        return True
    if resp.headers.get("X-RateLimit-Scope", "").lower() == "global":
        return True
    return isinstance(data, dict) and data.get("global") is True


def api_trace(pacer: Pacer | None = None) -> aiohttp.TraceConfig:
    """The hook for ``Client(http_trace=...)``: counts calls and 429 waits; with ``pacer``, every paced
    call waits for it before it leaves and a global 429 pauses it."""

    async def on_start(_session: Any, _ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams) -> None:
        path = _api_path(params.url)
        if path is None:
            return
        if pacer is not None and paced(params.method, path):
            await pacer.acquire()
        _count(params.method, path)

    async def on_end(_session: Any, _ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams) -> None:
        resp = params.response
        if resp.status != 429 or _api_path(params.url) is None:
            return
        data = await _body(resp)
        seconds = _retry_after(resp, data)
        if pacer is not None and _global(resp, data) and seconds > 0:
            log.warning("Discord's global rate limit was hit; pausing every request for %.2f s", seconds)
            pacer.pause(seconds)
        # discord.py waits out a 429 that looks like Discord's (a Via header) and sends the request again.
        if resp.headers.get("Via") and seconds > 0:
            rate_limit_wait_seconds_total.labels(platform="discord").inc(seconds)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    trace.on_request_end.append(on_end)
    return trace
