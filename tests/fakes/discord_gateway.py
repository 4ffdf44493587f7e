"""The fake Discord's gateway half: WebSocket sessions, one per shard, and the events routed to them.

A connection identifies with ``shard: [id, count]`` (none: shard 0 of 1) and receives READY and a
GUILD_CREATE for the guilds that shard owns, ``(guild_id >> 22) % count`` as on Discord; every later
event goes to the shard owning its guild (DMs to shard 0). ``GET /gateway/bot`` (the REST half) tells a
sharded client ``gateway_shards``. Tests read ``shards_identified`` and ``routed`` to see which shard
got what. ``FakeDiscord`` (tests/fakes/discord_server.py) mixes this in and owns the state it reads.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from typing import Any

from aiohttp import WSMsgType, web

MANAGE_GUILD = 1 << 5
MEMBER_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 38) | (1 << 16)  # view, send, send in threads, history
MESSAGE_CONTENT_INTENT = 1 << 15


def iso_now() -> str:
    return datetime.now(timezone.utc).isoformat()


def shard_of(guild_id: int | str | None, count: int) -> int:
    """The shard that receives ``guild_id``'s events (DMs, no guild: shard 0)."""
    return 0 if guild_id is None else (int(guild_id) >> 22) % count


class Gateway(ABC):
    """Gateway sessions and event routing (state and identities live on ``FakeDiscord``)."""

    guilds: dict[int, int]  # guild id -> its text channel
    channels: dict[int, dict[str, Any]]
    identified: list[int]
    shards_identified: list[tuple[int, int]]
    routed: list[tuple[int, str, str | None]]
    allow_message_content: bool
    bot: dict[str, Any]
    admin: dict[str, Any]
    app_id: int
    gateway_url: str
    _gateways: list[web.WebSocketResponse]
    _seq: int

    # The fake's REST half (FakeDiscord) provides these; the gateway half only calls them.
    @abstractmethod
    def member(self, user: dict[str, Any]) -> dict[str, Any]: ...

    @abstractmethod
    def snowflake(self) -> int: ...

    @abstractmethod
    async def _changed(self) -> None: ...

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}})
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                op = data.get("op")
                if op == 1:
                    await ws.send_json({"op": 11})
                elif op == 2:
                    intents = int(data["d"]["intents"])
                    if intents & MESSAGE_CONTENT_INTENT and not self.allow_message_content:
                        await ws.close(code=4014, message=b"Disallowed intent(s).")
                        break
                    shard = data["d"].get("shard") or [0, 1]
                    if not 0 <= shard[0] < shard[1]:
                        await ws.close(code=4010, message=b"Invalid shard.")
                        break
                    self.identified.append(intents)
                    self.shards_identified.append((shard[0], shard[1]))
                    await self._ready(ws, intents, (shard[0], shard[1]))
                elif op == 6:
                    await ws.send_json({"op": 9, "d": False})  # no resume here: identify again
        finally:
            if ws in self._gateways:
                self._gateways.remove(ws)
            await self._changed()
        return ws

    def owns(self, ws: web.WebSocketResponse, guild_id: int | str | None) -> bool:
        shard_id, count = getattr(ws, "shard", (0, 1))
        return shard_of(guild_id, count) == shard_id

    async def _ready(self, ws: web.WebSocketResponse, intents: int, shard: tuple[int, int]) -> None:
        ws.intents = intents  # type: ignore[attr-defined]
        ws.shard = shard  # type: ignore[attr-defined]
        mine = [g for g in self.guilds if self.owns(ws, g)]
        await self._send(ws, "READY", {
            "v": 10, "user": self.bot, "guilds": [{"id": str(g), "unavailable": True} for g in mine],
            "session_id": f"s{self.snowflake()}", "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.app_id), "flags": 1 << 19}, "shard": list(shard),
        })
        for guild_id in mine:
            await self._send(ws, "GUILD_CREATE", self._guild_create(guild_id))
        self._gateways.append(ws)
        await self._changed()

    def _guild_create(self, guild_id: int) -> dict[str, Any]:
        threads = [c for c in self.channels.values() if c["type"] == 11 and c["guild_id"] == str(guild_id)]
        return {
            "id": str(guild_id), "name": f"Guild {guild_id}", "icon": None, "owner_id": self.admin["id"],
            "roles": [{"id": str(guild_id), "name": "@everyone", "permissions": str(MEMBER_PERMISSIONS),
                       "position": 0, "color": 0, "hoist": False, "managed": False, "mentionable": False}],
            "emojis": [], "stickers": [], "features": [], "unavailable": False, "large": False,
            "member_count": 4, "joined_at": iso_now(), "channels": [self.channels[self.guilds[guild_id]]],
            "threads": threads, "members": [self.member(self.bot)], "presences": [], "voice_states": [],
            "mfa_level": 0, "verification_level": 0, "explicit_content_filter": 0,
            "default_message_notifications": 0, "premium_tier": 0, "preferred_locale": "en-US",
        }

    async def _send(self, ws: web.WebSocketResponse, event: str, data: Any) -> None:
        self._seq += 1
        await ws.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))

    async def dispatch(self, event: str, data: Any) -> None:
        """``event`` to the shard owning its guild (every connection of that shard)."""
        guild_id = data.get("guild_id") if isinstance(data, dict) else None
        for ws in list(self._gateways):
            if not ws.closed and self.owns(ws, guild_id):
                self.routed.append((getattr(ws, "shard", (0, 1))[0], event, guild_id))
                await self._send(ws, event, self._for(ws, event, data))

    def _for(self, ws: web.WebSocketResponse, event: str, data: Any) -> Any:
        # Without Message Content, Discord blanks messages that neither mention the bot nor are DMs.
        intents = getattr(ws, "intents", 0)
        if event == "MESSAGE_CREATE" and not intents & MESSAGE_CONTENT_INTENT and data.get("guild_id"):
            if not any(u["id"] == self.bot["id"] for u in data.get("mentions", [])):
                return {**data, "content": ""}
        return data

    async def send_raw(self, text: str) -> None:
        """A frame as is: for malformed payloads."""
        for ws in list(self._gateways):
            await ws.send_str(text)

    @property
    def connected(self) -> int:
        return len([ws for ws in self._gateways if not ws.closed])

    def connected_shards(self) -> set[int]:
        """The shard ids with an open, identified connection."""
        return {getattr(ws, "shard", (0, 1))[0] for ws in self._gateways if not ws.closed}
