"""A fake Discord: gateway (WebSocket) and REST API in one aiohttp server, for the real discord.py client.

The gateway half (sessions, shards, event routing) is tests/fakes/discord_gateway.py; this module holds
the state, the REST API and the helpers tests drive it with.

It keeps guild, channels, threads and messages in memory, answers the REST calls the adapter makes,
dispatches gateway events (MESSAGE_CREATE, THREAD_CREATE, INTERACTION_CREATE...) to connected
clients, and behaves like Discord where the adapter depends on it: the per-channel bucket for
message sends and edits (429 with ``retry_after`` past 5 per 5 s), ``enforce_nonce`` deduplication,
"thread already exists", content over 2,000 characters refused (400), Message Content withheld without
the privileged intent (close code 4014 when it is requested but not allowed). ``refuse_components`` /
``fail_components`` make message writes that carry components (a final answer's run link, an approval
card; never a live edit) and a marked content fail, for delivery tests. Files: ``add_attachment``
hosts a file at a CDN URL (``cdn_status`` / ``cdn_stall`` make it answer an error or hang); a message
created with multipart files keeps them as attachments, and ``uploads`` their bytes. Tests drive it (``user_message``, ``click``, ``slash``,
``send_raw``) and wait on its state with ``wait_for`` (a condition, never a fixed sleep).

Sharding: ``add_guild(shard=, of=)`` adds a guild whose events go to that shard; ``gateway_shards`` is
the count GET /gateway/bot recommends. The global limit: ``calls`` keeps when each request arrived
(``busiest`` counts the most in any window), and ``global_limit(retry_after)`` answers the next request
bound to the global limit with a global 429 (``global: true``, ``X-RateLimit-Scope: global``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web

from tests.fakes.discord_gateway import MANAGE_GUILD, MEMBER_PERMISSIONS, Gateway, iso_now, shard_of
from tests.fakes.http import serve_local

DISCORD_EPOCH = 1420070400000
CONTENT_LIMIT = 2000  # characters of a message's content


@dataclass
class Call:
    method: str
    path: str
    body: Any
    status: int
    at: float
    channel: int | None = None


@dataclass
class Interaction:
    id: int
    token: str
    payload: dict[str, Any]
    responses: list[dict[str, Any]] = field(default_factory=list)  # callback bodies, in order
    followups: list[dict[str, Any]] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)  # @original edits
    first_response_after: float | None = None  # seconds from dispatch to the first callback


# Discord: "Interaction endpoints are not bound to the bot's Global Rate Limit".
INTERACTION_ROUTES = ("/interactions/", "/webhooks/")


class FakeDiscord(Gateway):
    def __init__(self, *, allow_message_content: bool = True, bucket: tuple[int, float] = (5, 5.0)) -> None:
        self.allow_message_content = allow_message_content
        self.bucket_per, self.bucket_window = bucket
        self._ids = itertools.count(1)
        self.bot = self._user("durabot", bot=True)
        self.app_id = int(self.bot["id"])
        self.alice = self._user("alice")
        self.bob = self._user("bob")
        self.admin = self._user("admin")
        self.other_bot = self._user("otherbot", bot=True)
        self.guild_id = self.snowflake()
        self.channel_id = self.snowflake()
        self.channels: dict[int, dict[str, Any]] = {self.channel_id: {
            "id": str(self.channel_id), "type": 0, "guild_id": str(self.guild_id), "name": "general",
            "position": 0, "permission_overwrites": [], "nsfw": False, "parent_id": None, "topic": None,
            "last_message_id": None, "rate_limit_per_user": 0,
        }}
        self.messages: dict[int, list[dict[str, Any]]] = {self.channel_id: []}
        self.guilds: dict[int, int] = {self.guild_id: self.channel_id}  # the bot's guilds -> their channel
        self.gateway_shards = 1  # what GET /gateway/bot recommends
        self.shards_identified: list[tuple[int, int]] = []  # [shard id, count] of each IDENTIFY
        self.routed: list[tuple[int, str, str | None]] = []  # (shard id, event, guild id) of each dispatch
        self._global_429: float | None = None  # retry_after of the next global 429
        self.calls: list[Call] = []
        self.interactions: dict[int, Interaction] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.typing: list[int] = []
        self.identified: list[int] = []  # intents of each IDENTIFY
        self.fail_edits = 0  # answer the next N message edits with 429
        self._refusals: list[list[Any]] = []  # [method, path suffix, times left, status, code]
        self.retry_after = 0.3
        # mark -> "invalid" (400 Invalid Form Body), "forbidden" (403 Missing Access) or "garbled" (200 with a
        # body that is no message) for every message write carrying components and the mark in its content
        self.refuse_components: dict[str, str] = {}
        self.fail_components: dict[str, list[int]] = {}  # mark -> statuses (429, 5xx) for the next such writes
        self._sent: dict[int, deque[float]] = {}
        self._gateways: list[web.WebSocketResponse] = []
        self._seq = 0
        self._cond = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.cdn: dict[str, tuple[bytes, str]] = {}  # attachment id -> (bytes, content type)
        self.cdn_status: dict[str, int] = {}
        self.cdn_stall: set[str] = set()
        self.cdn_downloads: list[str] = []
        self.uploads: list[tuple[str, bytes]] = []  # (filename, bytes) of files the bot posted
        self.stall_uploads = 0  # the next N messages with files are stored, but their answers never come
        self._cdn_release = asyncio.Event()

    # ------------------------------------------------------------------ ids and objects
    def snowflake(self) -> int:
        return ((int(time.time() * 1000) - DISCORD_EPOCH) << 22) | (next(self._ids) & 0x3FFFFF)

    def snowflake_on(self, shard: int, of: int) -> int:
        """A new id whose guild would belong to shard ``shard`` of ``of`` (its time part, the bits above
        22, chosen up to ``of`` milliseconds ahead)."""
        ms = int(time.time() * 1000) - DISCORD_EPOCH
        ms += (shard - ms) % of
        return (ms << 22) | (next(self._ids) & 0x3FFFFF)

    def add_guild(self, *, shard: int = 0, of: int = 1) -> tuple[int, int]:
        """A guild the bot is in whose events go to shard ``shard`` of ``of``: (guild id, its channel)."""
        gid = self.snowflake_on(shard, of)
        cid = self.snowflake()
        self.channels[cid] = {**self.channels[self.channel_id], "id": str(cid), "guild_id": str(gid),
                              "name": f"general-{gid}"}
        self.messages[cid] = []
        self.guilds[gid] = cid
        return gid, cid

    def _user(self, name: str, bot: bool = False) -> dict[str, Any]:
        return {"id": str(self.snowflake()), "username": name, "discriminator": "0", "global_name": name,
                "avatar": None, "bot": bot}

    def member(self, user: dict[str, Any]) -> dict[str, Any]:
        perms = MEMBER_PERMISSIONS | (MANAGE_GUILD if user is self.admin else 0)
        return {"user": user, "roles": [], "joined_at": iso_now(), "deaf": False, "mute": False, "flags": 0,
                "permissions": str(perms)}

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def env(self) -> dict[str, str]:
        return {"DISCORD_BOT_TOKEN": "fake-token", "DISCORD_API_BASE": self.api_base,
                "DISCORD_GATEWAY_URL": self.gateway_url, "DISCORD_GUILD_ID": str(self.guild_id)}

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> "FakeDiscord":
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        app.router.add_get("/attachments/{aid}/{name}", self._cdn)
        self._runner, self.port = await serve_local(app)
        return self

    def add_attachment(self, data: bytes, filename: str, content_type: str = "application/octet-stream",
                       size: int | None = None) -> dict[str, Any]:
        """Host a file on the fake CDN; returns its attachment object (for ``user_message``)."""
        aid = str(self.snowflake())
        self.cdn[aid] = (data, content_type)
        url = f"http://127.0.0.1:{self.port}/attachments/{aid}/{filename}?ex=expires"
        return {"id": aid, "filename": filename, "size": len(data) if size is None else size, "url": url,
                "proxy_url": url, "content_type": content_type}

    async def _cdn(self, request: web.Request) -> web.Response:
        aid = request.match_info["aid"]
        self.cdn_downloads.append(aid)
        await self._changed()
        if aid in self.cdn_stall:
            await self._cdn_release.wait()
        if aid in self.cdn_status:
            return web.Response(status=self.cdn_status[aid], text="error")
        found = self.cdn.get(aid)
        if found is None:
            return web.Response(status=404, text="not found")
        return web.Response(body=found[0], content_type=found[1])

    async def stop(self) -> None:
        self._cdn_release.set()
        for ws in list(self._gateways):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _changed(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
        """Wait until ``predicate()`` is truthy (checked at every change of the fake's state)."""

        async def wait() -> Any:
            async with self._cond:
                while True:
                    value = predicate()
                    if value:
                        return value
                    await self._cond.wait()

        try:
            return await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}") from None

    # ------------------------------------------------------------------ driving
    async def user_message(self, content: str, *, author: dict[str, Any] | None = None,
                           channel_id: int | None = None, mention: bool = True,
                           attachments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """A person posts; with ``mention`` the content starts with the bot's mention."""
        author = author or self.alice
        channel_id = channel_id or self.channel_id
        text = f"<@{self.bot['id']}> {content}" if mention else content
        msg = self._message(channel_id, author, text, mentions=[self.bot] if mention else [])
        msg["attachments"] = list(attachments or [])
        await self.dispatch("MESSAGE_CREATE", msg)
        await self._changed()
        return msg

    def open_dm(self, user: dict[str, Any]) -> int:
        cid = self.snowflake()
        self.channels[cid] = {"id": str(cid), "type": 1, "last_message_id": None, "recipients": [user]}
        self.messages[cid] = []
        return cid

    async def user_thread(self, name: str, author: dict[str, Any]) -> int:
        """A thread a person opened (not the bot)."""
        starter = self._message(self.channel_id, author, name)
        thread = self._thread(int(starter["id"]), self.channel_id, name, owner=author["id"])
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return int(thread["id"])

    async def click(self, message: dict[str, Any], custom_id: str, user: dict[str, Any], *,
                    channel_id: int | None = None, permissions: int | None = None) -> Interaction:
        """A click on ``message``'s button; ``channel_id``: clicked where a copy of it was posted
        (another channel or guild, see ``foreign_channel``); ``permissions``: the clicker's there."""
        cid = channel_id or int(message["channel_id"])
        return await self._interaction(3, cid, user, {"custom_id": custom_id, "component_type": 2},
                                       message=message, permissions=permissions)

    def foreign_channel(self, guild: bool = True) -> int:
        """A text channel in another guild the bot is not in (or, ``guild=False``, in this guild)."""
        cid = self.snowflake()
        gid = self.snowflake() if guild else self.guild_id
        self.channels[cid] = {**self.channels[self.channel_id], "id": str(cid), "guild_id": str(gid),
                              "name": f"elsewhere-{cid}"}
        self.messages[cid] = []
        return cid

    async def slash(self, sub: str, user: dict[str, Any], channel_id: int, **options: str) -> Interaction:
        """``/durabot <sub>`` with string ``options`` (name=value)."""
        cmds = self.commands.get(f"guild:{self.guild_id}") or self.commands.get("global") or []
        cmd = next(c for c in cmds if c["name"] == "durabot")
        given = [{"name": k, "type": 3, "value": v} for k, v in options.items()]
        data = {"id": cmd["id"], "name": "durabot", "type": 1, "guild_id": str(self.guild_id),
                "options": [{"name": sub, "type": 1, "options": given}]}
        return await self._interaction(2, channel_id, user, data)

    async def _interaction(self, kind: int, channel_id: int, user: dict[str, Any], data: dict[str, Any],
                           message: dict[str, Any] | None = None, permissions: int | None = None) -> Interaction:
        iid = self.snowflake()
        channel = self.channels[channel_id]
        payload: dict[str, Any] = {
            "id": str(iid), "application_id": str(self.app_id), "type": kind, "token": f"tok{iid}",
            "version": 1, "channel_id": str(channel_id), "channel": channel, "data": data, "locale": "en-US",
            "app_permissions": str(MEMBER_PERMISSIONS), "entitlements": [], "attachment_size_limit": 10485760,
            "authorizing_integration_owners": {}, "context": 0 if channel.get("guild_id") else 1,
        }
        if channel.get("guild_id"):
            member = self.member(user)
            if permissions is not None:
                member["permissions"] = str(permissions)
            payload.update(guild_id=channel["guild_id"], guild_locale="en-US", member=member)
        else:
            payload["user"] = user
        if message is not None:
            payload["message"] = message
        it = self.interactions[iid] = Interaction(iid, payload["token"], payload)
        it.dispatched_at = time.monotonic()  # type: ignore[attr-defined]
        await self.dispatch("INTERACTION_CREATE", payload)
        return it

    def refuse(self, method: str, suffix: str, *, times: int = 1, status: int = 403, code: int = 50013) -> None:
        """Answer the next ``times`` calls of ``method`` on a path ending with ``suffix`` with an error
        (by default 403 Missing Permissions, what Discord says when the bot lacks a permission)."""
        self._refusals.append([method, suffix, times, status, code])

    def _refused(self, method: str, path: str) -> tuple[int, Any, None] | None:
        for r in self._refusals:
            if r[0] == method and path.endswith(r[1]) and r[2] > 0:
                r[2] -= 1
                message = "Missing Permissions" if r[3] == 403 else "refused by the test"
                return r[3], {"message": message, "code": r[4]}, None
        return None

    # ------------------------------------------------------------------ reading state
    def bot_messages(self, channel_id: int) -> list[dict[str, Any]]:
        return [m for m in self.messages.get(channel_id, []) if m["author"]["id"] == self.bot["id"]]

    def threads(self) -> list[dict[str, Any]]:
        return [c for c in self.channels.values() if c["type"] == 11]

    def calls_to(self, method: str, fragment: str, channel: int | None = None) -> list[Call]:
        return [c for c in self.calls if c.method == method and fragment in c.path
                and (channel is None or c.channel == channel)]

    def busiest(self, window: float, calls: list[Call] | None = None) -> int:
        """The most requests that arrived within any ``window`` seconds (of ``calls``, or all but the
        interaction routes the global limit does not bind)."""
        calls = self.paced_calls() if calls is None else calls
        times = sorted(c.at for c in calls)
        most, first = 0, 0
        for last, t in enumerate(times):
            while t - times[first] > window:
                first += 1
            most = max(most, last - first + 1)
        return most

    def paced_calls(self) -> list[Call]:
        return [c for c in self.calls if not c.path.startswith(INTERACTION_ROUTES)]

    def global_limit(self, retry_after: float) -> None:
        """Answer the next request bound to the global limit with a global 429 (``retry_after`` s)."""
        self._global_429 = retry_after

    def find_message(self, message_id: int) -> dict[str, Any] | None:
        for msgs in self.messages.values():
            for m in msgs:
                if int(m["id"]) == message_id:
                    return m
        return None

    # ------------------------------------------------------------------ storage
    def _message(self, channel_id: int, author: dict[str, Any], content: str, *,
                 mentions: list | None = None, components: list | None = None, nonce: str | None = None,
                 flags: int = 0) -> dict[str, Any]:
        channel = self.channels[channel_id]
        msg: dict[str, Any] = {
            "id": str(self.snowflake()), "channel_id": str(channel_id), "author": author, "content": content,
            "timestamp": iso_now(), "edited_timestamp": None, "tts": False, "mention_everyone": False,
            "mentions": mentions or [], "mention_roles": [], "attachments": [], "embeds": [], "pinned": False,
            "type": 0, "components": components or [], "flags": flags,
        }
        if nonce is not None:
            msg["nonce"] = nonce
        if channel.get("guild_id"):
            msg["guild_id"] = channel["guild_id"]
            msg["member"] = {k: v for k, v in self.member(author).items() if k != "user"}
        self.messages.setdefault(channel_id, []).append(msg)
        channel["last_message_id"] = msg["id"]
        return msg

    def _thread(self, thread_id: int, parent_id: int, name: str, owner: str) -> dict[str, Any]:
        guild_id = self.channels[parent_id].get("guild_id") or str(self.guild_id)
        thread = {
            "id": str(thread_id), "type": 11, "guild_id": guild_id, "parent_id": str(parent_id),
            "owner_id": owner, "name": name, "last_message_id": None, "message_count": 0, "member_count": 1,
            "rate_limit_per_user": 0, "flags": 0,
            "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "archive_timestamp": iso_now(),
                                "locked": False},
        }
        self.channels[thread_id] = thread
        self.messages[thread_id] = []
        return thread

    # ------------------------------------------------------------------ REST
    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        body: Any = None
        if request.content_type.startswith("multipart/"):  # a message with files: JSON part + file parts
            form = await request.post()
            body = json.loads(str(form.get("payload_json") or "{}"))
            raw_files = {f.filename: f.file.read() for f in form.values() if hasattr(f, "file")}
            body["_files"] = {name: data.decode("utf-8", errors="replace") for name, data in raw_files.items()}
            body["_raw_files"] = raw_files
        elif request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw and request.content_type == "application/json" else raw
        arrived = time.monotonic()
        headers = {"Content-Type": "application/json"}
        if self._global_429 is not None and not path.startswith(INTERACTION_ROUTES):
            retry_after, self._global_429 = self._global_429, None
            status, data, channel = 429, {"message": "You are being rate limited.", "retry_after": retry_after,
                                          "global": True}, None
            headers.update({"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"})
        else:
            retry_after = self.retry_after
            status, data, channel = self._refused(request.method, path) or await self._route(
                request.method, path, body, request.query)
        if isinstance(body, dict):
            body.pop("_raw_files", None)
        self.calls.append(Call(request.method, path, body, status, arrived, channel))
        await self._changed()
        if status == 429:
            headers["Via"] = "1.1 google"  # discord.py retries a 429 only when it looks like Discord's
            headers["Retry-After"] = str(retry_after)
        if status == 204:
            return web.Response(status=204)
        return web.Response(status=status, body=json.dumps(data).encode(), headers=headers)

    def _limited(self, channel_id: int) -> bool:
        sent = self._sent.setdefault(channel_id, deque())
        now = time.monotonic()
        while sent and now - sent[0] >= self.bucket_window:
            sent.popleft()
        if len(sent) >= self.bucket_per:
            return True
        sent.append(now)
        return False

    def _too_long(self) -> dict[str, Any]:
        return {"message": "Invalid Form Body", "code": 50035, "errors": {"content": {"_errors": [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {CONTENT_LIMIT} or fewer in length."}]}}}

    def _too_many(self) -> dict[str, Any]:
        return {"message": "You are being rate limited.", "retry_after": self.retry_after, "global": False}

    async def _route(self, method: str, path: str, body: Any, query: Any) -> tuple[int, Any, int | None]:
        parts = path.strip("/").split("/")
        if path == "/users/@me":
            return 200, self.bot, None
        if path == "/oauth2/applications/@me":
            return 200, {"id": str(self.app_id), "name": "durabot", "description": "", "icon": None,
                         "bot_public": True, "bot_require_code_grant": False, "owner": self.admin,
                         "verify_key": "00", "flags": 1 << 19, "team": None}, None
        if path == "/gateway/bot":
            return 200, {"url": self.gateway_url, "shards": self.gateway_shards, "session_start_limit": {
                "total": 1000, "remaining": 999, "reset_after": 86_400_000, "max_concurrency": 1}}, None
        if path == "/gateway":
            return 200, {"url": self.gateway_url}, None
        if parts[0] == "applications" and method == "PUT":
            key = f"guild:{parts[3]}" if parts[2] == "guilds" else "global"
            cmds = [{**c, "id": str(self.snowflake()), "application_id": str(self.app_id), "version": "1",
                     "default_member_permissions": c.get("default_member_permissions"), "type": c.get("type", 1)}
                    for c in body]
            self.commands[key] = cmds
            return 200, cmds, None
        if parts[0] == "channels":
            return await self._channels(method, parts, body, query)
        if parts[0] == "interactions":
            return await self._callback(int(parts[1]), body)
        if parts[0] == "webhooks":
            return await self._webhook(method, parts, body)
        return 404, {"message": f"fake Discord has no {method} {path}", "code": 0}, None

    async def _channels(self, method: str, parts: list[str], body: Any, query: Any) -> tuple[int, Any, int | None]:
        cid = int(parts[1])
        channel = self.channels.get(cid)
        if channel is None:
            return 404, {"message": "Unknown Channel", "code": 10003}, cid
        rest = parts[2:]
        injected = self._injected(method, rest, body)
        if injected is not None:
            return (*injected, cid)
        if not rest and method == "GET":
            return 200, channel, cid
        if rest == ["typing"]:
            self.typing.append(cid)
            return 204, None, cid
        if rest == ["messages"] and method == "GET":
            msgs = list(reversed(self.messages.get(cid, [])))
            if "before" in query:
                msgs = [m for m in msgs if int(m["id"]) < int(query["before"])]
            limit = int(query.get("limit", 50))
            if "after" in query:  # like Discord: the oldest ``limit`` after it, newest first
                msgs = [m for m in msgs if int(m["id"]) > int(query["after"])][-limit:]
            return 200, msgs[:limit], cid
        if rest == ["messages"] and method == "POST":
            nonce = body.get("nonce")
            if nonce and body.get("enforce_nonce"):
                for m in self.messages.get(cid, []):
                    if m.get("nonce") == nonce and m["author"]["id"] == self.bot["id"]:
                        return 200, m, cid
            if len(body.get("content") or "") > CONTENT_LIMIT:
                return 400, self._too_long(), cid
            if self._limited(cid):
                return 429, self._too_many(), cid
            msg = self._message(cid, self.bot, body.get("content") or "", components=body.get("components"),
                                nonce=nonce)
            for name, data in (body.pop("_raw_files", None) or {}).items():
                aid = str(self.snowflake())
                self.cdn[aid] = (data, "application/octet-stream")
                url = f"http://127.0.0.1:{self.port}/attachments/{aid}/{name}"
                msg["attachments"].append({"id": aid, "filename": name, "size": len(data), "url": url,
                                           "proxy_url": url})
                self.uploads.append((name, data))
            if msg["attachments"] and self.stall_uploads > 0:
                self.stall_uploads -= 1
                await self._changed()
                await self._cdn_release.wait()  # until the fake stops: the client gave up long before
            if body.get("message_reference"):
                msg["message_reference"] = body["message_reference"]
            await self.dispatch("MESSAGE_CREATE", msg)
            return 200, msg, cid
        if len(rest) == 2 and rest[0] == "messages":
            msg = next((m for m in self.messages.get(cid, []) if m["id"] == rest[1]), None)
            if msg is None:
                return 404, {"message": "Unknown Message", "code": 10008}, cid
            if method == "PATCH":
                if len(body.get("content") or "") > CONTENT_LIMIT:
                    return 400, self._too_long(), cid
                if self.fail_edits > 0:
                    self.fail_edits -= 1
                    return 429, self._too_many(), cid
                if self._limited(cid):
                    return 429, self._too_many(), cid
                self._edit(msg, body)
                await self.dispatch("MESSAGE_UPDATE", msg)
                return 200, msg, cid
            if method == "DELETE":
                self.messages[cid].remove(msg)
                return 204, None, cid
        if len(rest) == 3 and rest[0] == "messages" and rest[2] == "threads" and method == "POST":
            mid = int(rest[1])
            if mid in self.channels:
                return 400, {"message": "A thread has already been created for this message", "code": 160004}, cid
            thread = self._thread(mid, cid, body["name"], owner=self.bot["id"])
            await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
            return 200, thread, cid
        return 404, {"message": "fake Discord: unknown channel route", "code": 0}, cid

    def _injected(self, method: str, rest: list[str], body: Any) -> tuple[int, Any] | None:
        """A failure a test asked for (``refuse_components``, ``fail_components``), or None."""
        writes = (method == "POST" and rest == ["messages"]) or (method == "PATCH" and rest[:1] == ["messages"])
        if not writes or not isinstance(body, dict) or not body.get("components"):
            return None
        content = body.get("content") or ""
        for mark, statuses in self.fail_components.items():
            if mark in content and statuses:
                status = statuses.pop(0)
                return status, self._too_many() if status == 429 else {"message": "upstream error", "code": 0}
        for mark, how in self.refuse_components.items():
            if mark in content:
                return {
                    "invalid": (400, {"message": "Invalid Form Body", "code": 50035, "errors": {"components": {}}}),
                    "forbidden": (403, {"message": "Missing Access", "code": 50001}),
                    "garbled": (200, {"id": str(self.snowflake())}),
                }[how]
        return None

    def _edit(self, msg: dict[str, Any], body: dict[str, Any]) -> None:
        if "content" in body:
            msg["content"] = body["content"] or ""
        if "components" in body:
            msg["components"] = body["components"] or []
        msg["edited_timestamp"] = iso_now()

    async def _callback(self, iid: int, body: dict[str, Any]) -> tuple[int, Any, int | None]:
        it = self.interactions[iid]
        if len((body.get("data") or {}).get("content") or "") > CONTENT_LIMIT:
            return 400, self._too_long(), None
        if it.responses:
            return 400, {"message": "Interaction has already been acknowledged.", "code": 40060}, None
        it.first_response_after = time.monotonic() - it.dispatched_at  # type: ignore[attr-defined]
        it.responses.append(body)
        kind, data = body["type"], body.get("data") or {}
        message = it.payload.get("message")
        if kind == 7 and message is not None:
            self._edit(message, data)
        out: dict[str, Any] = {"interaction": {
            "id": str(iid), "type": it.payload["type"], "response_message_loading": kind == 5,
            "response_message_ephemeral": bool(data.get("flags", 0) & 64)}}
        if kind in (4, 7):
            out["resource"] = {"type": kind, "message": message if kind == 7 else {
                **self._loose_message(int(it.payload["channel_id"]), data)}}
        return 200, out, None

    def _loose_message(self, channel_id: int, data: dict[str, Any]) -> dict[str, Any]:
        """An interaction's own message (ephemeral or not): not stored in the channel."""
        return {"id": str(self.snowflake()), "channel_id": str(channel_id), "author": self.bot,
                "content": data.get("content") or "", "timestamp": iso_now(), "edited_timestamp": None,
                "tts": False, "mention_everyone": False, "mentions": [], "mention_roles": [], "attachments": [],
                "embeds": [], "pinned": False, "type": 20, "components": data.get("components") or [],
                "flags": data.get("flags", 0)}

    async def _webhook(self, method: str, parts: list[str], body: Any) -> tuple[int, Any, int | None]:
        token = parts[2]
        it = next((i for i in self.interactions.values() if i.token == token), None)
        if it is None:
            return 404, {"message": "Unknown Webhook", "code": 10015}, None
        cid = int(it.payload["channel_id"])
        if isinstance(body, dict) and len(body.get("content") or "") > CONTENT_LIMIT:
            return 400, self._too_long(), None
        if method == "POST":
            it.followups.append(body)
            return 200, self._loose_message(cid, body), None
        if method == "PATCH" and parts[-1] == "@original":
            it.edits.append(body)
            message = it.payload.get("message")
            if it.payload["type"] == 3 and message is not None:
                stored = self.find_message(int(message["id"])) or message
                self._edit(stored, body)
                await self.dispatch("MESSAGE_UPDATE", stored)
                return 200, stored, None
            return 200, self._loose_message(cid, body), None
        return 404, {"message": "fake Discord: unknown webhook route", "code": 0}, None
