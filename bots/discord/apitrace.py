"""Counting Discord REST calls and 429 waits, from one hook on discord.py's HTTP session.

discord.py sends every REST request, interaction callbacks and follow-ups included, through one
aiohttp session, which accepts a ``TraceConfig`` (``Client(http_trace=...)``). Each request that
leaves (a retry after a 429 too) counts once in ``durabot_platform_api_calls_total``, by a short route
name; a 429 that discord.py waits out before retrying adds its Retry-After to
``durabot_rate_limit_wait_seconds_total``. The gateway WebSocket is not a REST call and is not counted.

discord.py's own pre-emptive bucket waits (X-RateLimit-Remaining at 0) are not visible here; the
adapter's ``ChannelLimiter`` keeps sends and edits under those buckets, and counts its own waits.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import aiohttp
import discord
from yarl import URL

from agent_core.metrics import platform_api_calls_total, rate_limit_wait_seconds_total

__all__ = ["api_trace", "route_name"]

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


def _api_path(url: URL) -> str | None:
    """The path after discord.py's API base (``Route.BASE``), or None for anything else (the gateway)."""
    base = URL(discord.http.Route.BASE)
    if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
        return None
    prefix = base.path.rstrip("/")
    if not url.path.startswith(prefix + "/"):
        return None
    return url.path[len(prefix):]


async def _on_request_start(_session: Any, _ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams) -> None:
    path = _api_path(params.url)
    if path is not None:
        platform_api_calls_total.labels(platform="discord", method=route_name(params.method, path)).inc()


async def _on_request_end(_session: Any, _ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams) -> None:
    resp = params.response
    # discord.py waits out a 429 that looks like Discord's (a Via header) and sends the request again.
    if resp.status != 429 or not resp.headers.get("Via") or _api_path(params.url) is None:
        return
    wait = resp.headers.get("X-RateLimit-Reset-After") or resp.headers.get("Retry-After")
    try:
        seconds = float(wait) if wait else 0.0
    except ValueError:
        seconds = 0.0
    if seconds > 0:
        rate_limit_wait_seconds_total.labels(platform="discord").inc(seconds)


def api_trace() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(_on_request_start)
    trace.on_request_end.append(_on_request_end)
    return trace
