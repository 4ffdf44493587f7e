"""A local fake of the Slack Web API (and of Socket Mode's websocket), for tests and the benchmark.

It keeps channels and threads in memory, records every call, checks the bot token, and enforces the
documented limits the adapter must respect:
- chat.update: at most ``update_limit`` calls per ``update_window`` seconds per workspace (Tier 3,
  "~50 per minute") -> HTTP 429 with Retry-After;
- chat.postMessage: ~1 per second per channel with short bursts (a token bucket) -> 429;
- ``rate_limit_next``: a test forces the next calls of a method to answer 429;
- ``refuse_blocks`` / ``fail_blocks``: a test makes chat writes that carry blocks (final answers with a
  run link, approval cards; never live edits) and a marked text fail: refused with an error, or
  answered with the next HTTP statuses of a list (429 with Retry-After, 5xx) without being performed;
- sizes: text over 40,000 characters (msg_too_long), over 50 blocks, a section over 3,000
  characters, an action_id over 255 or a value over 2,000 (invalid_blocks); a modal (views.open) without
  a trigger_id, over 100 blocks, a section over 3,000 characters or a title over 24 (``views`` keeps them).
- native streaming (chat.startStream / appendStream / stopStream): start and stop at most
  ``stream_tier2`` calls each per ``stream_window`` seconds per workspace (Tier 2), append at most
  ``stream_tier4`` (Tier 4) -> 429; ``markdown_text`` (and each markdown chunk) at most 12,000
  characters; recipient_team_id and recipient_user_id required outside DMs (invalid_arguments); a
  stream not stopped within ``stream_expiry`` seconds ends (message_not_in_streaming_state, and the
  message keeps ``streaming_state: "expired"``); ``refuse_streaming`` makes every streaming call answer
  that error (unknown_method, missing_scope, ...). Streamed messages carry ``streaming_state`` and
  their task cards (``tasks``, by id, latest state) and ``task_log`` (every task update in order), for
  tests to look at: conversations.replies and history leave them out, as Slack documents no such field
  (see the notes on Slack's reference below the imports).
- AI-app threads: assistant.threads.setStatus / setSuggestedPrompts / setTitle with their required
  arguments, at most four prompts, each with a title and a message (kept in ``statuses``,
  ``suggested`` and ``titles``); feedback buttons (a ``feedback_buttons`` element, only inside a
  ``context_actions`` block, with both buttons: plain-text labels of 75 characters, values of 2,000).
``ephemerals`` keeps what chat.postEphemeral showed to whom.
Files: ``add_file`` hosts a file at its ``url_private_download``, served only with the bot token (else
Slack's HTML sign-in page, with status 200, as Slack does); ``file_status`` / ``file_stall`` make a
download answer an HTTP error or hang. Uploads follow the external flow (``files.getUploadURLExternal``,
a POST of the bytes, ``files.completeUploadExternal`` sharing them in a thread as a bot message);
``uploads`` keeps the bytes shared, by file id.
``over_limit`` counts requests refused for rate; a well-behaved client keeps it at 0.
Runs on the caller's event loop (``await fake.start()``).

Several workspaces: every bot token belongs to one team (``tokens``), and each team has its own bot
user (``bots``). ``auth.test``, posts, edits and the chat.update budget follow the calling token's
team, and every recorded call keeps the token it carried. ``oauth.v2.access`` exchanges a code that
``authorize(team)`` handed out (what Slack's authorize page does when someone approves the install)
for a new bot token of that team, checking the app's client id and secret; ``revoke(team)`` makes
every token of a team invalid, as removing the app does.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import math
import random
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.http import serve_local

MAX_TEXT = 40_000
MAX_MARKDOWN = 12_000

# What Slack's reference says of a streamed message, checked on docs.slack.dev:
# - chat.startStream (https://docs.slack.dev/reference/methods/chat.startStream) takes channel,
#   thread_ts, markdown_text / chunks, recipient_team_id and recipient_user_id (required in channels),
#   task_display_mode: no metadata. It answers ok, channel and ts (the streamed message's ts).
# - chat.appendStream (https://docs.slack.dev/reference/methods/chat.appendStream) and chat.stopStream
#   (https://docs.slack.dev/reference/methods/chat.stopStream) name the message by channel and that ts;
#   only chat.stopStream takes metadata (and blocks for the end of the message). Its answer's message
#   carries streaming_state (the Node SDK's ChatStopStreamResponse type, generated from Slack's own
#   samples).
# - conversations.replies and conversations.history (https://docs.slack.dev/reference/methods/
#   conversations.replies) document no field telling a message still streaming from any other; their
#   message type in Slack's SDKs has no streaming_state. So the fake leaves it out of what they return
#   (``replies_show_streaming_state`` puts it back, for a test of a client that relies on it anyway).
# - How long an unstopped stream lives is not documented: Slack's SDK maintainers call it an
#   undocumented server-side timeout, seen at about five minutes; after it appendStream and stopStream
#   answer message_not_in_streaming_state, and chat.update on the ts still edits the message
#   (slackapi/python-slack-sdk#1859 and #1880). The fake ends a stream after ``stream_expiry`` seconds.
_STREAM_RECORDS = frozenset({"streaming_state", "tasks", "task_log"})

_caller: ContextVar[tuple[str, str]] = ContextVar("fake_slack_caller", default=("", ""))  # (token, team)
_connection: ContextVar[object] = ContextVar("fake_slack_connection", default=None)  # the client's address


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    status: int
    error: str | None
    at: float = field(default_factory=time.monotonic)
    token: str = field(default_factory=lambda: _caller.get()[0])  # the token the call carried
    team: str = field(default_factory=lambda: _caller.get()[1])  # its team ("" for a refused token)
    connection: object = field(default_factory=_connection.get)  # the TCP connection it came over (peer address)


class FakeSlack:
    def __init__(self, *, token: str = "xoxb-test", app_token: str = "xapp-test", team: str = "T1",
                 bot_user: str = "UBOT", bot_id: str = "BBOT", update_limit: int = 50,
                 update_window: float = 60.0, post_rate: float = 1.0, post_burst: int = 4,
                 client_id: str = "111.222", client_secret: str = "client-secret",
                 stream_tier2: int = 20, stream_tier4: int = 100, stream_window: float = 60.0,
                 stream_expiry: float = 300.0) -> None:
        self.token, self.app_token, self.team = token, app_token, team
        self.bot_user, self.bot_id = bot_user, bot_id
        self.tokens: dict[str, str] = {token: team}  # bot token -> its team
        self.bots: dict[str, tuple[str, str]] = {team: (bot_user, bot_id)}  # team -> (bot user, bot id)
        self.client_id, self.client_secret = client_id, client_secret
        self.codes: dict[str, tuple[str, str]] = {}  # OAuth code -> (team, installing user)
        self.update_limit, self.update_window = update_limit, update_window
        self.post_rate, self.post_burst = post_rate, post_burst
        self.calls: list[Call] = []
        self.messages: dict[str, list[dict]] = {}
        self.users: dict[str, dict] = {}
        self.team_users: dict[str, dict[str, dict]] = {}  # team -> users as that workspace knows them
        self.views: list[dict] = []  # modals opened with views.open
        self.ephemerals: list[dict] = []  # chat.postEphemeral: channel, user, text, thread_ts
        self.statuses: list[tuple[str, str, str]] = []  # assistant.threads.setStatus: channel, thread, status
        self.suggested: list[dict] = []  # assistant.threads.setSuggestedPrompts: channel_id, thread_ts, prompts, title
        self.titles: list[tuple[str, str, str]] = []  # assistant.threads.setTitle: channel, thread, title
        self.visible: list[tuple[float, str, str, str]] = []  # (at, channel, ts, text) of posts and edits
        self.over_limit = 0
        self.lose_response: dict[str, int] = {}  # method -> how many next calls succeed but answer 500
        self.rate_limit_next: dict[str, int] = {}  # method -> how many next calls answer 429 (Retry-After: 1)
        self.refuse_blocks: dict[str, str] = {}  # mark -> error answered to chat writes with blocks and the mark
        self.fail_blocks: dict[str, list[int]] = {}  # mark -> HTTP statuses for the next such writes
        self.replies_show_streaming_state = False  # conversations.replies / history show streaming_state
        self._updates: dict[str, deque[float]] = {}
        self.stream_tier2, self.stream_tier4 = stream_tier2, stream_tier4
        self.stream_window, self.stream_expiry = stream_window, stream_expiry
        self.refuse_streaming: str | None = None
        self._stream_calls: dict[tuple[str, str], deque[float]] = {}  # (team, method) -> times of accepted calls
        self._buckets: dict[str, tuple[float, float]] = {}
        self._ts = itertools.count(1)
        # Each fake is a fresh workspace history: distinct ts so conversation ids never collide with
        # another test's conversations on the shared Temporal server.
        self._ts_base = random.randint(1_600_000_000, 1_690_000_000)
        self._changed = asyncio.Condition()
        self._sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Future] = {}
        self._socket_ready = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.files: dict[str, tuple[bytes, str]] = {}  # file id -> (bytes, mimetype) of hosted files
        self.file_status: dict[str, int] = {}  # file id -> HTTP status its download answers instead
        self.file_stall: set[str] = set()  # file ids whose download never answers
        self.file_chunked: set[str] = set()  # file ids served without Content-Length (chunked)
        self.downloads: list[tuple[str, bool]] = []  # (file id, with the bot token)
        self._pending_uploads: dict[str, dict] = {}  # file id -> {"name", "length", "data"}
        self.uploads: dict[str, bytes] = {}  # file id -> bytes, once shared
        self._stall = asyncio.Event()

    # ---------------------------------------------------------------- server
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/socket", self._socket)
        app.router.add_get("/files-pri/{file_id}/{name}", self._download)
        app.router.add_post("/upload/{file_id}", self._upload)
        self._runner, self.port = await serve_local(app)
        return self

    async def stop(self) -> None:
        self._stall.set()
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def next_ts(self) -> str:
        n = next(self._ts)
        return f"{self._ts_base + n}.{n:06d}"

    # ---------------------------------------------------------------- helpers for tests
    def add_user_message(self, channel: str, text: str, user: str = "U1", thread_ts: str | None = None) -> dict:
        """Store a person's message (as Slack would) and return the ``message`` event for it."""
        ts = self.next_ts()
        msg = {"type": "message", "user": user, "text": text, "ts": ts, "channel": channel}
        if thread_ts:
            msg["thread_ts"] = thread_ts
        self.messages.setdefault(channel, []).append(dict(msg))
        msg["channel_type"] = "im" if channel.startswith("D") else "channel"
        return msg

    def add_assistant_thread(self, channel: str, user: str = "U1", context_channel: str | None = None) -> dict:
        """Open a new thread with the app in its DM ``channel`` (as Slack does: a root message of
        subtype assistant_app_thread) and return the ``assistant_thread_started`` event."""
        ts = self.next_ts()
        self.messages.setdefault(channel, []).append({
            "type": "message", "subtype": "assistant_app_thread", "user": user, "text": "New chat", "ts": ts,
            "thread_ts": ts, "channel": channel})
        return {"type": "assistant_thread_started", "event_ts": self.next_ts(), "assistant_thread": {
            "user_id": user, "channel_id": channel, "thread_ts": ts,
            "context": {"channel_id": context_channel, "team_id": self.team} if context_channel else {}}}

    def thread_status(self, channel: str, thread_ts: str) -> list[str]:
        """The statuses set in a thread, in order ("" clears)."""
        return [st for ch, th, st in self.statuses if ch == channel and th == thread_ts]

    def add_file(self, data: bytes, name: str, mimetype: str = "application/octet-stream",
                 size: int | None = None) -> dict:
        """Host a file; returns its Slack file object (for a message's ``files``). ``size``: what the
        object announces, when it should differ from the bytes."""
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        self.files[file_id] = (data, mimetype)
        url = f"http://127.0.0.1:{self.port}/files-pri/{file_id}/{urllib.parse.quote(name)}"
        return {"id": file_id, "name": name, "title": name, "mimetype": mimetype,
                "filetype": name.rsplit(".", 1)[-1] if "." in name else "binary",
                "size": len(data) if size is None else size, "mode": "hosted", "url_private": url,
                "url_private_download": url + "?download=1"}

    def add_user_message_with_files(self, channel: str, text: str, files: list[dict], user: str = "U1",
                                    thread_ts: str | None = None) -> dict:
        """A person's message sharing files (subtype ``file_share``), stored; returns its event."""
        event = self.add_user_message(channel, text, user=user, thread_ts=thread_ts)
        stored = self.messages[channel][-1]
        for msg in (event, stored):
            msg["files"] = files
            msg["subtype"] = "file_share"
            msg["upload"] = True
        return event

    async def _download(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        authorised = request.headers.get("Authorization") == f"Bearer {self.token}"
        self.downloads.append((file_id, authorised))
        await self._notify()
        if file_id in self.file_stall:
            await self._stall.wait()
        if file_id in self.file_status:
            return web.Response(status=self.file_status[file_id], text="error")
        if not authorised:  # Slack answers its sign-in page, with 200, to a request without the token
            return web.Response(status=200, content_type="text/html",
                                text="<!DOCTYPE html><html><body>Sign in to Slack</body></html>")
        found = self.files.get(file_id)
        if found is None:
            return web.Response(status=404, text="file_not_found")
        data, mimetype = found
        if file_id not in self.file_chunked:
            return web.Response(status=200, body=data, content_type=mimetype)
        resp = web.StreamResponse(status=200, headers={"Content-Type": mimetype})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            for i in range(0, len(data), 1024 * 1024):
                await resp.write(data[i:i + 1024 * 1024])
            await resp.write_eof()
        except ConnectionResetError:
            pass  # the client stopped reading (a file over its limit)
        return resp

    async def _upload(self, request: web.Request) -> web.Response:
        pending = self._pending_uploads.get(request.match_info["file_id"])
        if pending is None:
            return web.Response(status=404, text="unknown upload")
        pending["data"] = await request.read()
        return web.Response(status=200, text="OK - " + str(len(pending["data"])))

    def _m_files_getUploadURLExternal(self, p: dict) -> dict:
        name, length = p.get("filename") or "", p.get("length") or ""
        if not name or not str(length).isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        self._pending_uploads[file_id] = {"name": name, "length": int(length), "data": None}
        return {"ok": True, "upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, p: dict) -> dict:
        files = p.get("files")
        files = json.loads(files) if isinstance(files, str) else files
        channel = p.get("channel_id") or ""
        shared = []
        for f in files or []:
            pending = self._pending_uploads.get(f.get("id") or "")
            if pending is None or pending["data"] is None:
                return {"ok": False, "error": "file_not_found"}
            if len(pending["data"]) != pending["length"]:
                return {"ok": False, "error": "file_upload_size_mismatch"}
            self.uploads[f["id"]] = pending["data"]
            shared.append({"id": f["id"], "name": pending["name"], "title": f.get("title") or pending["name"],
                           "size": len(pending["data"]), "mode": "hosted"})
        if channel and shared:
            ts = self.next_ts()
            bot_user, bot_id = self._caller_bot()
            msg = {"type": "message", "user": bot_user, "bot_id": bot_id, "text": "", "ts": ts,
                   "channel": channel, "files": shared, "upload": True}
            if p.get("thread_ts"):
                msg["thread_ts"] = p["thread_ts"]
            self.messages.setdefault(channel, []).append(msg)
            self.visible.append((time.monotonic(), channel, ts, ""))
        return {"ok": True, "files": shared}

    def thread(self, channel: str, thread_ts: str) -> list[dict]:
        return sorted((m for m in self.messages.get(channel, [])
                       if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts), key=lambda m: float(m["ts"]))

    def bot_messages(self, channel: str, thread_ts: str | None = None) -> list[dict]:
        msgs = self.thread(channel, thread_ts) if thread_ts else self.messages.get(channel, [])
        ours = {bot_id for _, bot_id in self.bots.values()}
        return [m for m in msgs if m.get("bot_id") in ours]

    # ---------------------------------------------------------------- workspaces
    def authorize(self, team: str, installer: str = "U1", bot_user: str | None = None,
                  bot_id: str | None = None) -> str:
        """Someone in ``team`` approved the install on Slack's page: the code Slack redirects with."""
        self.bots.setdefault(team, (bot_user or f"UBOT{team}", bot_id or f"BBOT{team}"))
        code = f"code-{uuid.uuid4().hex[:12]}"
        self.codes[code] = (team, installer)
        return code

    def revoke(self, team: str) -> None:
        """The app was removed from ``team``: its tokens stop working."""
        for token in [t for t, owner in self.tokens.items() if owner == team]:
            del self.tokens[token]

    def calls_of(self, team: str, method: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.team == team and (method is None or c.method == method)]

    def _caller_bot(self) -> tuple[str, str]:
        return self.bots.get(_caller.get()[1], (self.bot_user, self.bot_id))

    def count(self, method: str, ok: bool | None = None) -> int:
        return sum(1 for c in self.calls if c.method == method and (ok is None or (c.error is None) == ok))

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        async def wait() -> Any:
            async with self._changed:
                while not (result := predicate()):
                    await self._changed.wait()
                return result

        return await asyncio.wait_for(wait(), timeout)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ---------------------------------------------------------------- the API
    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.content_type == "application/json":
            params = await request.json()
        else:
            params = {k: v for k, v in (await request.post()).items()}
        params = {**dict(request.query), **params}  # slack_sdk sends form-style params in the query
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        _caller.set((token, self.tokens.get(token, "")))  # this request's, not the connection's last
        _connection.set(request.transport.get_extra_info("peername") if request.transport else None)
        if method == "oauth.v2.access":  # the app's credentials, as HTTP Basic auth
            return await self._oauth_access(method, params, auth)
        if method == "apps.connections.open":
            valid = auth == f"Bearer {self.app_token}"
        else:
            valid = token in self.tokens
        if not valid:
            return await self._answer(method, params, {"ok": False, "error": "invalid_auth"})
        if self.rate_limit_next.get(method, 0) > 0:  # forced by a test: not counted in over_limit
            self.rate_limit_next[method] -= 1
            self.calls.append(Call(method, params, 429, "ratelimited"))
            await self._notify()
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"})
        injected = await self._injected(method, params)
        if injected is not None:
            return injected
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return await self._answer(method, params, {"ok": False, "error": "unknown_method"})
        result = handler(params)
        if isinstance(result, web.Response):
            return result
        lost = self.lose_response.get(method, 0)
        if lost and result.get("ok"):
            self.lose_response[method] = lost - 1
            self.calls.append(Call(method, params, 500, "lost_response"))
            await self._notify()
            return web.Response(status=500, text="upstream connect error")
        return await self._answer(method, params, result)

    async def _injected(self, method: str, params: dict) -> web.Response | None:
        """A failure a test asked for (``refuse_blocks``, ``fail_blocks``), or None."""
        if method not in ("chat.postMessage", "chat.update"):
            return None
        blocks = params.get("blocks")
        if not (json.loads(blocks) if isinstance(blocks, str) else blocks):
            return None
        text = params.get("text") or ""
        for mark, statuses in self.fail_blocks.items():
            if mark in text and statuses:
                status = statuses.pop(0)
                error = "ratelimited" if status == 429 else "service_unavailable"
                self.calls.append(Call(method, params, status, error))
                await self._notify()
                return web.json_response({"ok": False, "error": error}, status=status,
                                         headers={"Retry-After": "1"} if status == 429 else None)
        for mark, error in self.refuse_blocks.items():
            if mark in text:
                return await self._answer(method, params, {"ok": False, "error": error})
        return None

    async def _answer(self, method: str, params: dict, result: dict, status: int = 200,
                      headers: dict | None = None) -> web.Response:
        self.calls.append(Call(method, params, status, None if result.get("ok") else result.get("error")))
        await self._notify()
        return web.json_response(result, status=status, headers=headers)

    def _limited(self, method: str, params: dict, retry_after: float) -> web.Response:
        self.over_limit += 1
        self.calls.append(Call(method, params, 429, "ratelimited"))
        return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                 headers={"Retry-After": str(max(1, math.ceil(retry_after)))})

    def _m_auth_test(self, p: dict) -> dict:
        team = _caller.get()[1]
        bot_user, bot_id = self._caller_bot()
        url = "https://fake.slack.test/" if team == self.team else f"https://{team.lower()}.slack.test/"
        return {"ok": True, "url": url, "team": f"Team {team}", "user": "durabot",
                "team_id": team, "user_id": bot_user, "bot_id": bot_id}

    async def _oauth_access(self, method: str, params: dict, auth: str) -> web.Response:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if auth != f"Basic {expected}":
            return await self._answer(method, params, {"ok": False, "error": "invalid_client_id"})
        grant = self.codes.pop(str(params.get("code") or ""), None)
        if grant is None:
            return await self._answer(method, params, {"ok": False, "error": "invalid_code"})
        team, installer = grant
        token = f"xoxb-{team}-{uuid.uuid4().hex}"
        self.tokens[token] = team
        bot_user, _bot_id = self.bots[team]
        return await self._answer(method, params, {
            "ok": True, "app_id": "A1", "access_token": token, "token_type": "bot",
            "scope": "app_mentions:read,chat:write,commands", "bot_user_id": bot_user,
            "team": {"id": team, "name": f"Team {team}"}, "enterprise": None, "is_enterprise_install": False,
            "authed_user": {"id": installer},
        })

    def _m_apps_connections_open(self, p: dict) -> dict:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}

    def _check_size(self, p: dict) -> str | None:
        text = p.get("text") or ""
        if len(text) > MAX_TEXT:
            return "msg_too_long"
        blocks = p.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if blocks:
            if len(blocks) > 50:
                return "invalid_blocks"
            for b in blocks:
                if len(((b.get("text") or {}).get("text")) or "") > 3000:
                    return "invalid_blocks"
                if b.get("type") == "context_actions" and not 1 <= len(b.get("elements") or []) <= 5:
                    return "invalid_blocks"
                for el in b.get("elements") or []:
                    if len(el.get("action_id") or "") > 255 or len(el.get("value") or "") > 2000:
                        return "invalid_blocks"
                    if el.get("type") == "feedback_buttons" and (
                            b.get("type") != "context_actions" or not _feedback_buttons_ok(el)):
                        return "invalid_blocks"
        if not text and not blocks:
            return "no_text"
        return None

    def _m_chat_postMessage(self, p: dict) -> dict | web.Response:
        channel = p.get("channel") or ""
        now = time.monotonic()
        tokens, at = self._buckets.get(channel, (float(self.post_burst), now))
        tokens = min(self.post_burst, tokens + (now - at) * self.post_rate)
        if tokens < 1:
            self._buckets[channel] = (tokens, now)
            return self._limited("chat.postMessage", p, (1 - tokens) / self.post_rate)
        self._buckets[channel] = (tokens - 1, now)
        error = self._check_size(p)
        if error:
            return {"ok": False, "error": error}
        ts = self.next_ts()
        bot_user, bot_id = self._caller_bot()
        msg = {"type": "message", "user": bot_user, "bot_id": bot_id, "text": p.get("text") or "",
               "ts": ts, "channel": channel}
        for name in ("thread_ts", "blocks", "metadata"):
            if p.get(name):
                value = p[name]
                msg[name] = json.loads(value) if isinstance(value, str) and name != "thread_ts" else value
        self.messages.setdefault(channel, []).append(msg)
        self.visible.append((now, channel, ts, msg["text"]))
        return {"ok": True, "channel": channel, "ts": ts, "message": msg}

    def _m_chat_update(self, p: dict) -> dict | web.Response:
        now = time.monotonic()
        window = self._updates.setdefault(_caller.get()[1], deque())  # the budget of the caller's workspace
        while window and window[0] <= now - self.update_window:
            window.popleft()
        if len(window) >= self.update_limit:
            return self._limited("chat.update", p, window[0] + self.update_window - now)
        window.append(now)
        error = self._check_size(p)
        if error:
            return {"ok": False, "error": error}
        channel, ts = p.get("channel") or "", p.get("ts") or ""
        for msg in self.messages.get(channel, []):
            if msg["ts"] == ts:
                if msg.get("bot_id") != self._caller_bot()[1]:  # another workspace's bot cannot edit it
                    return {"ok": False, "error": "cant_update_message"}
                msg["text"] = p.get("text") or ""
                blocks = p.get("blocks")
                msg["blocks"] = json.loads(blocks) if isinstance(blocks, str) else (blocks or [])
                if p.get("metadata"):
                    msg["metadata"] = p["metadata"]
                msg["edits"] = msg.get("edits", 0) + 1
                self.visible.append((now, channel, ts, msg["text"]))
                return {"ok": True, "channel": channel, "ts": ts, "text": msg["text"]}
        return {"ok": False, "error": "message_not_found"}

    # ---------------------------------------------------------------- native streaming
    def _stream_rate(self, method: str, p: dict, limit: int) -> web.Response | None:
        now = time.monotonic()
        window = self._stream_calls.setdefault((_caller.get()[1], method), deque())  # per workspace
        while window and window[0] <= now - self.stream_window:
            window.popleft()
        if len(window) >= limit:
            return self._limited(method, p, window[0] + self.stream_window - now)
        window.append(now)
        return None

    @staticmethod
    def _chunks(p: dict) -> list[dict]:
        chunks = p.get("chunks") or []
        return json.loads(chunks) if isinstance(chunks, str) else list(chunks)

    def _stream_content(self, p: dict) -> tuple[str, list[dict]] | str:
        """(markdown, task updates) of a streaming call, or the error for a malformed one."""
        texts = [p["markdown_text"]] if p.get("markdown_text") else []
        tasks = []
        for c in self._chunks(p):
            if c.get("type") == "markdown_text":
                texts.append(c.get("text") or "")
            elif c.get("type") == "task_update":
                if not c.get("id") or not c.get("title") or c.get("status") not in (
                        "pending", "in_progress", "complete", "error"):
                    return "invalid_chunks"
                tasks.append(c)
            elif c.get("type") not in ("plan_update", "blocks"):
                return "invalid_chunks"
        if any(len(t) > MAX_MARKDOWN for t in texts):
            return "msg_too_long"
        return "".join(texts), tasks

    def _streaming(self, p: dict) -> dict | str:
        """The streamed message a call names, if it still streams; else the error."""
        channel, ts = p.get("channel") or "", p.get("ts") or ""
        for msg in self.messages.get(channel, []):
            if msg["ts"] == ts:
                if msg.get("streaming_state") == "in_progress" and \
                        time.monotonic() - msg["_started"] > self.stream_expiry:
                    msg["streaming_state"] = "expired"
                if msg.get("streaming_state") != "in_progress":
                    return "message_not_in_streaming_state"
                return msg
        return "message_not_found"

    def _stream_add(self, msg: dict, text: str, tasks: list[dict]) -> None:
        msg["text"] += text
        for t in tasks:
            msg["tasks"][t["id"]] = dict(t)
            msg["task_log"].append(dict(t))
        self.visible.append((time.monotonic(), msg["channel"], msg["ts"], msg["text"]))

    def _m_chat_startStream(self, p: dict) -> dict | web.Response:
        if self.refuse_streaming:
            return {"ok": False, "error": self.refuse_streaming}
        limited = self._stream_rate("chat.startStream", p, self.stream_tier2)
        if limited is not None:
            return limited
        channel = p.get("channel") or ""
        if not channel or not p.get("thread_ts"):
            return {"ok": False, "error": "invalid_arguments"}
        if not channel.startswith("D") and not (p.get("recipient_team_id") and p.get("recipient_user_id")):
            return {"ok": False, "error": "invalid_arguments"}
        content = self._stream_content(p)
        if isinstance(content, str):
            return {"ok": False, "error": content}
        ts = self.next_ts()
        bot_user, bot_id = self._caller_bot()
        msg = {"type": "message", "user": bot_user, "bot_id": bot_id, "text": "", "ts": ts,
               "channel": channel, "thread_ts": p["thread_ts"], "streaming_state": "in_progress",
               "tasks": {}, "task_log": [], "_started": time.monotonic()}
        self.messages.setdefault(channel, []).append(msg)
        self._stream_add(msg, *content)
        return {"ok": True, "channel": channel, "ts": ts}

    def _open_stream(self, method: str, p: dict, tier: int) -> tuple[dict, tuple] | dict | web.Response:
        """An append's or a stop's checks, in Slack's order: refusal, rate, the stream, its content;
        the stream message and its content, or the refusal to answer."""
        if self.refuse_streaming:
            return {"ok": False, "error": self.refuse_streaming}
        limited = self._stream_rate(method, p, tier)
        if limited is not None:
            return limited
        msg = self._streaming(p)
        if isinstance(msg, str):
            return {"ok": False, "error": msg}
        content = self._stream_content(p)
        if isinstance(content, str):
            return {"ok": False, "error": content}
        return msg, content

    def _m_chat_appendStream(self, p: dict) -> dict | web.Response:
        opened = self._open_stream("chat.appendStream", p, self.stream_tier4)
        if not isinstance(opened, tuple):
            return opened
        msg, content = opened
        if not content[0] and not content[1]:
            return {"ok": False, "error": "invalid_arguments"}
        self._stream_add(msg, *content)
        return {"ok": True, "channel": msg["channel"], "ts": msg["ts"]}

    def _m_chat_stopStream(self, p: dict) -> dict | web.Response:
        opened = self._open_stream("chat.stopStream", p, self.stream_tier2)
        if not isinstance(opened, tuple):
            return opened
        msg, content = opened
        blocks = p.get("blocks")
        blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
        if blocks and len(blocks) > 50:
            return {"ok": False, "error": "invalid_blocks"}
        msg["streaming_state"] = "completed"
        if blocks:
            msg["blocks"] = blocks
        if p.get("metadata"):
            md = p["metadata"]
            msg["metadata"] = json.loads(md) if isinstance(md, str) else md
        self._stream_add(msg, *content)
        return {"ok": True, "channel": msg["channel"], "ts": msg["ts"],
                "message": {k: v for k, v in msg.items() if not k.startswith("_")}}

    def stream_calls_over_tier(self) -> int:
        """429s answered to streaming calls for rate (part of ``over_limit``)."""
        return sum(1 for c in self.calls if c.method.endswith("Stream") and c.status == 429)

    def _m_chat_postEphemeral(self, p: dict) -> dict:
        if not p.get("user") or not p.get("channel") or not p.get("text"):
            return {"ok": False, "error": "invalid_arguments"}
        self.ephemerals.append({k: p.get(k) for k in ("channel", "user", "text", "thread_ts")})
        return {"ok": True, "message_ts": self.next_ts()}

    def _m_assistant_threads_setStatus(self, p: dict) -> dict:
        """``status`` is required but may be empty: an empty status clears it."""
        if not p.get("channel_id") or not p.get("thread_ts") or "status" not in p:
            return {"ok": False, "error": "invalid_arguments"}
        if len(p.get("loading_messages") or []) > 10:
            return {"ok": False, "error": "invalid_arguments"}
        self.statuses.append((p["channel_id"], p["thread_ts"], str(p["status"])))
        return {"ok": True}

    def _m_assistant_threads_setSuggestedPrompts(self, p: dict) -> dict:
        prompts = p.get("prompts")
        if isinstance(prompts, str):
            prompts = json.loads(prompts)
        if not p.get("channel_id") or not isinstance(prompts, list) or not 1 <= len(prompts) <= 4:
            return {"ok": False, "error": "invalid_arguments"}
        if not all(isinstance(x, dict) and x.get("title") and x.get("message") for x in prompts):
            return {"ok": False, "error": "invalid_arguments"}
        self.suggested.append({"channel_id": p["channel_id"], "thread_ts": p.get("thread_ts"), "prompts": prompts,
                               "title": p.get("title")})
        return {"ok": True}

    def _m_assistant_threads_setTitle(self, p: dict) -> dict:
        if not p.get("channel_id") or not p.get("thread_ts") or not p.get("title"):
            return {"ok": False, "error": "invalid_arguments"}
        self.titles.append((p["channel_id"], p["thread_ts"], p["title"]))
        return {"ok": True}

    def _m_views_open(self, p: dict) -> dict:
        """A modal: needs the click's trigger_id; at most 100 blocks, sections of 3,000 characters,
        a title of 24."""
        view = p.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not p.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        if not isinstance(view, dict) or view.get("type") != "modal":
            return {"ok": False, "error": "invalid_arguments"}
        blocks = view.get("blocks") or []
        title = ((view.get("title") or {}).get("text")) or ""
        if not title or len(title) > 24 or len(blocks) > 100 or any(
                len(((b.get("text") or {}).get("text")) or "") > 3000 for b in blocks):
            return {"ok": False, "error": "invalid_arguments"}
        self.views.append(view)
        return {"ok": True, "view": {**view, "id": f"V{len(self.views)}"}}

    def _with_metadata(self, msgs: list[dict], p: dict) -> list[dict]:
        """Messages as conversations.replies / history return them: metadata only on request, and the
        fake's own records of a stream (``streaming_state``, ``tasks``, ``task_log``) left out, because
        Slack documents no such field there (see ``replies_show_streaming_state``)."""
        keep = str(p.get("include_all_metadata", "")).lower() in ("1", "true")
        hidden = set() if self.replies_show_streaming_state else _STREAM_RECORDS
        return [{k: v for k, v in m.items() if (keep or k != "metadata") and not k.startswith("_")
                 and k not in hidden} for m in msgs]

    @staticmethod
    def _page(msgs: list[dict], p: dict, default_limit: int, max_limit: int = 1000) -> dict:
        """One page of ``msgs`` (already in Slack's order) as Slack pages it: ``limit`` items, and an
        opaque ``response_metadata.next_cursor`` (empty on the last page) that the next call passes as
        ``cursor``. A cursor that was not handed out answers ``invalid_cursor``."""
        try:
            limit = int(p.get("limit") or default_limit)
        except ValueError:
            return {"ok": False, "error": "invalid_limit"}
        limit = max(1, min(limit, max_limit))
        start = 0
        if p.get("cursor"):
            try:
                start = int(base64.urlsafe_b64decode(str(p["cursor"]).encode()).decode().removeprefix("next:"))
            except (ValueError, UnicodeDecodeError):
                return {"ok": False, "error": "invalid_cursor"}
        page, rest = msgs[start:start + limit], msgs[start + limit:]
        cursor = base64.urlsafe_b64encode(f"next:{start + limit}".encode()).decode() if rest else ""
        return {"ok": True, "messages": page, "has_more": bool(rest), "response_metadata": {"next_cursor": cursor}}

    @staticmethod
    def _in_range(msgs: list[dict], p: dict) -> list[dict] | None:
        """``oldest`` / ``latest`` (exclusive unless ``inclusive``); None for a malformed bound."""
        inclusive = str(p.get("inclusive", "")).lower() in ("1", "true")
        try:
            oldest = float(p["oldest"]) if p.get("oldest") else None
            latest = float(p["latest"]) if p.get("latest") else None
        except ValueError:
            return None

        def keep(m: dict) -> bool:
            ts = float(m["ts"])
            if oldest is not None and (ts < oldest or (ts == oldest and not inclusive)):
                return False
            return latest is None or ts < latest or (ts == latest and inclusive)

        return [m for m in msgs if keep(m)]

    def _m_conversations_replies(self, p: dict) -> dict:
        """The parent first, then replies oldest first. As in Slack, ``oldest`` / ``latest`` select the
        replies while the parent always opens the first page."""
        channel, ts = p.get("channel") or "", p.get("ts") or ""
        msgs = self.thread(channel, ts)
        if not msgs:
            return {"ok": False, "error": "thread_not_found"}
        parent, replies = [m for m in msgs if m["ts"] == ts], [m for m in msgs if m["ts"] != ts]
        selected = self._in_range(replies, p)
        if selected is None:
            return {"ok": False, "error": "invalid_ts_oldest"}
        result = self._page(parent + selected, p, default_limit=1000)
        if result.get("ok"):
            result["messages"] = self._with_metadata(result["messages"], p)
        return result

    def _m_conversations_history(self, p: dict) -> dict:
        channel = p.get("channel") or ""
        top = [m for m in self.messages.get(channel, []) if m.get("thread_ts") in (None, m["ts"])]
        top.sort(key=lambda m: float(m["ts"]), reverse=True)
        selected = self._in_range(top, p)
        if selected is None:
            return {"ok": False, "error": "invalid_ts_oldest"}
        result = self._page(selected, p, default_limit=100, max_limit=999)
        if result.get("ok"):
            result["messages"] = self._with_metadata(result["messages"], p)
        return result

    def _m_users_info(self, p: dict) -> dict:
        user = p.get("user") or ""
        info = self.team_users.get(_caller.get()[1], {}).get(user) or self.users.get(
            user, {"id": user, "name": user.lower(), "is_admin": False})
        return {"ok": True, "user": info}

    # ---------------------------------------------------------------- Socket Mode
    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1,
                            "connection_info": {"app_id": "A1"}, "debug_info": {}})
        self._socket_ready.set()
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                fut = self._acks.pop(data.get("envelope_id", ""), None)
                if fut is not None and not fut.done():
                    fut.set_result(data)
        finally:
            self._sockets.remove(ws)
        return ws

    async def socket_send(self, kind: str, payload: dict, retry_attempt: int = 0,
                          timeout: float = 5.0) -> dict:
        """Send one envelope (events_api | interactive | slash_commands); return the client's ack."""
        await asyncio.wait_for(self._socket_ready.wait(), timeout)
        envelope_id = uuid.uuid4().hex
        fut = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = fut
        await self._sockets[-1].send_json({
            "envelope_id": envelope_id, "type": kind, "payload": payload,
            "accepts_response_payload": kind != "events_api", "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        })
        return await asyncio.wait_for(fut, timeout)


def _feedback_buttons_ok(el: dict) -> bool:
    for name in ("positive_button", "negative_button"):
        button = el.get(name)
        if not isinstance(button, dict):
            return False
        text = button.get("text") or {}
        if text.get("type") != "plain_text" or not 1 <= len(text.get("text") or "") <= 75:
            return False
        if not 1 <= len(button.get("value") or "") <= 2000 or len(button.get("accessibility_label") or "") > 75:
            return False
    return True


class SlackSender:
    """Signs requests the way Slack does and posts them to the adapter's HTTP endpoint."""

    def __init__(self, url: str, secret: str, team: str = "T1") -> None:
        self.url, self.secret, self.team = url, secret, team
        self._session: aiohttp.ClientSession | None = None

    def sign(self, body: str, timestamp: int | None = None, secret: str | None = None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        base = f"v0:{ts}:{body}".encode()
        sig = "v0=" + hmac.new((secret or self.secret).encode(), base, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}

    async def post(self, body: str, content_type: str, headers: dict[str, str] | None = None,
                   **sign: Any) -> tuple[int, str]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        h = {"Content-Type": content_type, **self.sign(body, **sign), **(headers or {})}
        async with self._session.post(self.url, data=body.encode(), headers=h) as resp:
            return resp.status, await resp.text()

    def event_body(self, event: dict, event_id: str | None = None) -> str:
        return json.dumps({
            "token": "legacy", "team_id": self.team, "api_app_id": "A1", "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10]}", "event_time": int(time.time()),
            "event": event, "authorizations": [{"team_id": self.team, "user_id": "UBOT", "is_bot": True}],
        })

    async def event(self, event: dict, *, event_id: str | None = None, retry_num: int | None = None,
                    **sign: Any) -> tuple[int, str]:
        headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"} if retry_num else {}
        return await self.post(self.event_body(event, event_id), "application/json", headers, **sign)

    @staticmethod
    def click_payload(action_id: str, value: str, user: str, channel: str, message: dict, team: str = "T1") -> dict:
        return {
            "type": "block_actions", "team": {"id": team}, "user": {"id": user, "team_id": team, "username": user.lower(), "name": user.lower()},
            "api_app_id": "A1", "token": "legacy", "trigger_id": f"1.2.{uuid.uuid4().hex[:8]}",
            "channel": {"id": channel}, "container": {"type": "message", "message_ts": message["ts"],
                                                       "channel_id": channel},
            "message": message, "response_url": "https://hooks.example/r",
            "actions": [{"type": "button", "action_id": action_id, "value": value, "block_id": "b",
                         "action_ts": str(time.time())}],
        }

    @staticmethod
    def feedback_payload(message: dict, positive: bool, user: str, channel: str, team: str = "T1") -> dict:
        """A click on one of the feedback buttons of ``message`` (as Slack stores it: with its blocks)."""
        element = next(el for b in message.get("blocks") or [] if b.get("type") == "context_actions"
                       for el in b["elements"] if el.get("type") == "feedback_buttons")
        button = element["positive_button" if positive else "negative_button"]
        payload = SlackSender.click_payload(element["action_id"], button["value"], user, channel, message, team)
        payload["actions"][0].update(type="feedback_buttons", text=button["text"])
        return payload

    @staticmethod
    def view_submission(view: dict, user: str, values: dict, team: str = "T1") -> dict:
        """The submission of a modal opened with ``view``; ``values``: block_id -> action_id -> value."""
        state = {b: {a: {"type": "plain_text_input", "value": v} for a, v in acts.items()}
                 for b, acts in values.items()}
        return {
            "type": "view_submission", "team": {"id": team}, "user": {"id": user, "team_id": team},
            "api_app_id": "A1", "token": "legacy", "trigger_id": f"1.2.{uuid.uuid4().hex[:8]}",
            "view": {**view, "id": "V1", "team_id": team, "state": {"values": state}, "hash": "h"},
        }

    async def click(self, payload: dict) -> tuple[int, str]:
        body = "payload=" + urllib.parse.quote(json.dumps(payload))
        return await self.post(body, "application/x-www-form-urlencoded")

    @staticmethod
    def command_fields(text: str, user: str, channel: str = "C1", team: str = "T1") -> dict[str, str]:
        return {"token": "legacy", "team_id": team, "channel_id": channel, "user_id": user, "user_name": user.lower(),
                "command": "/durabot",
                "text": text, "response_url": "https://hooks.example/c", "trigger_id": "1.2.3", "api_app_id": "A1"}

    async def command(self, text: str, user: str, channel: str = "C1") -> tuple[int, str]:
        body = urllib.parse.urlencode(self.command_fields(text, user, channel, self.team))
        return await self.post(body, "application/x-www-form-urlencoded")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
