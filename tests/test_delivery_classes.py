"""How each platform's delivery sorts its failures (pure: no server needed)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import aiohttp
import discord

from bots.core.delivery import plain
from bots.discord import delivery as discord_delivery
from bots.slack import delivery as slack_delivery
from bots.slack.web import SlackCallError


def _discord_error(cls: type[discord.HTTPException], status: int, message: str, code: int,
                   **headers: str) -> discord.HTTPException:
    response = SimpleNamespace(status=status, reason=message, headers=headers)
    return cls(response, {"message": message, "code": code})


def test_slack_failures_by_type():
    def kind(exc: Exception) -> str:
        return slack_delivery.classify(exc).kind

    limited = slack_delivery.classify(SlackCallError("chat.postMessage", "ratelimited", 429, 7.0))
    assert (limited.kind, limited.retry_after) == ("later", 7.0)
    assert kind(SlackCallError("chat.update", "service_unavailable", 503)) == "later"
    assert kind(SlackCallError("chat.update", "no answer (ClientConnectorError)")) == "later"
    assert kind(TimeoutError()) == "later"
    assert kind(aiohttp.ClientConnectionError()) == "later"
    for error in ("channel_not_found", "not_in_channel", "is_archived"):
        assert kind(SlackCallError("chat.postMessage", error, 200)) == "refused"
    for error in ("invalid_blocks", "msg_too_long", "invalid_arguments"):
        assert kind(SlackCallError("chat.postMessage", error, 200)) == "unexpected"
    assert kind(IndexError("list index out of range")) == "unexpected"
    assert "out of range" not in slack_delivery.classify(IndexError("list index out of range")).reason


def test_discord_failures_by_type():
    def kind(exc: Exception) -> str:
        return discord_delivery.classify(exc).kind

    limited = discord_delivery.classify(
        _discord_error(discord.HTTPException, 429, "Too Many", 0, **{"Retry-After": "2.5"}))
    assert (limited.kind, limited.retry_after) == ("later", 2.5)
    assert discord_delivery.classify(discord.RateLimited(40.0)).retry_after == 40.0
    assert kind(_discord_error(discord.DiscordServerError, 503, "Service Unavailable", 0)) == "later"
    assert kind(asyncio.TimeoutError()) == "later"
    assert kind(aiohttp.ServerDisconnectedError()) == "later"
    forbidden = discord_delivery.classify(_discord_error(discord.Forbidden, 403, "Missing Access", 50001))
    assert forbidden.kind == "refused" and "Missing Access" in forbidden.reason
    assert kind(_discord_error(discord.NotFound, 404, "Unknown Channel", 10003)) == "refused"
    assert kind(_discord_error(discord.HTTPException, 400, "Invalid Form Body", 50035)) == "unexpected"
    assert kind(KeyError("attachments")) == "unexpected"


def test_plain_text_drops_control_characters():
    assert plain("a\x00b\x07c\nd\te\x7f") == "abc\nd\te"
