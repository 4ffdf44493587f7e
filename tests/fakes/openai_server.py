"""A local fake OpenAI-compatible server: the real openai client talks to it over HTTP.

A test scripts it with a function of the request (messages, tools) that returns a ``Reply``: text
streamed token by token, tool calls, or an HTTP error with headers; ``cut_after`` drops the connection
after some tokens (``break_first`` wraps a script so that only its first request breaks: the model round
is retried and streams its answer again), and ``hold_after`` pauses the stream until the test lets it
go on. Every request is recorded.
With ``context_limit`` set it plays a model with that many tokens of context: a request whose tokens
(estimated as agent_core counts them) pass it is answered 400 ``context_length_exceeded``, as OpenAI
does, and counted in ``overflows``.
Runs in a thread of its own so worker subprocesses and the test's event loop can both use it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web

from agent_core.tokens import request_tokens
from tests.fakes.http import serve_local


@dataclass
class Reply:
    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)  # (name, args)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error: str = "error"
    code: str | None = None  # the error's code, as OpenAI sends it (e.g. context_length_exceeded)
    ttft: float = 0.0  # seconds before the first chunk
    token_delay: float = 0.0  # seconds between chunks
    tokens: list[str] | None = None  # how to cut the text; default: words
    garbage: bool = False  # send a body that is not an SSE stream of JSON
    raw: bytes | None = None  # send this body as it is (after ttft), instead of one made of the fields above
    chunk_bytes: int = 0  # cut the body into network writes of this many bytes, token_delay apart
    cut_after_writes: int | None = None  # close the connection after this many network writes, the body unfinished
    # Token usage, sent in a last chunk when the request asks (stream_options.include_usage) unless
    # None; default: prompt = characters of the messages // 4, completion = pieces sent.
    usage: tuple[int, int] | None = (-1, -1)
    # A stream that breaks mid-way: after this many pieces the connection is dropped, with no end of
    # the stream ([DONE]) and no finish reason, as when the model server or the network dies mid-answer.
    cut_after: int | None = None
    cut_when: threading.Event | None = None  # ...once a test sets this (it first sees those pieces arrive)
    # A stream that pauses: after this many pieces it waits (up to 30 s) until a test sets ``hold_until``.
    hold_after: int | None = None
    hold_until: threading.Event | None = None


Script = Callable[[dict[str, Any]], Reply]


def last_user_text(body: dict[str, Any]) -> str:
    for m in reversed(body["messages"]):
        if m["role"] == "user":
            return content_text(m.get("content"))
    return ""


def content_text(content: Any) -> str:
    """A message's text: plain content, or its text parts joined (a message with files has parts)."""
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if p.get("type") == "text")
    return content or ""


def image_parts(body: dict[str, Any]) -> list[str]:
    """The data URIs of every image part the request carries."""
    return [p["image_url"]["url"] for m in body["messages"] if isinstance(m.get("content"), list)
            for p in m["content"] if p.get("type") == "image_url"]


def echo_script(body: dict[str, Any]) -> Reply:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text=f"tool said: {last['content']}")
    return Reply(text=f"echo: {last_user_text(body)}")


class FakeOpenAI:
    def __init__(self, script: Script = echo_script) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.context_limit: int | None = None
        self.request_tokens: list[int] = []  # of every request, while context_limit is set
        self.overflows = 0
        self.peers: list[Any] = []  # the client's address of every request: a reused connection repeats
        self.cuts = 0  # streams broken mid-way (``Reply.cut_after``)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "FakeOpenAI":
        self._thread = threading.Thread(target=self._serve, name="fake-openai", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)  # type: ignore[union-attr]
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=256 * 1024 * 1024)  # requests with images are large
        app.router.add_post("/v1/chat/completions", self._completions)
        self._runner, self.port = self._loop.run_until_complete(serve_local(app))
        self._ready.set()
        self._loop.run_forever()

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        if self.context_limit is not None:
            tokens = request_tokens(body["messages"], body.get("tools"))
            self.request_tokens.append(tokens)
            if tokens > self.context_limit:
                self.overflows += 1
                return web.json_response({"error": {
                    "message": f"This model's maximum context length is {self.context_limit} tokens. However, "
                               f"your messages resulted in {tokens} tokens.",
                    "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded",
                }}, status=400)
        reply = self.script(body)
        if reply.status != 200:
            return web.json_response(
                {"error": {"message": reply.error, "type": "fake", "code": reply.code}},
                status=reply.status, headers=reply.headers,
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if reply.garbage:
            await resp.write(b"data: {this is not json\n\n")
            await resp.write_eof()
            return resp
        if reply.ttft:
            await asyncio.sleep(reply.ttft)
        created = int(time.time())
        out = _Writer(resp, reply, request)
        if reply.raw is not None:
            await out.write(reply.raw)
            return await out.end()

        async def send(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {
                "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            await out.write(f"data: {json.dumps(chunk)}\n\n".encode())

        pieces = reply.tokens if reply.tokens is not None else _words(reply.text)
        for i, piece in enumerate(pieces):
            if i == reply.cut_after:
                return await self._cut(request, resp, reply)
            if i == reply.hold_after and reply.hold_until is not None:
                await asyncio.to_thread(reply.hold_until.wait, 30.0)
            if i and reply.token_delay and not reply.chunk_bytes:
                await asyncio.sleep(reply.token_delay)
            await send({"role": "assistant", "content": piece} if i == 0 else {"content": piece})
            if out.cut:
                return resp
        for i, (name, args) in enumerate(reply.tool_calls):
            arguments = args if isinstance(args, str) else json.dumps(args)
            await send({"tool_calls": [{
                "index": i, "id": f"call_{len(self.requests)}_{i}", "type": "function",
                "function": {"name": name, "arguments": arguments},
            }]})
        await send({}, "tool_calls" if reply.tool_calls else "stop")
        if (body.get("stream_options") or {}).get("include_usage") and reply.usage is not None:
            prompt, completion = reply.usage
            if prompt < 0:
                prompt = sum(len(str(m.get("content") or "")) for m in body["messages"]) // 4
                completion = len(pieces) + len(reply.tool_calls) * 10
            chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                     "model": body.get("model", "fake"), "choices": [],
                     "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                               "total_tokens": prompt + completion}}
            await out.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await out.write(b"data: [DONE]\n\n")
        return await out.end()

    async def _cut(self, request: web.Request, resp: web.StreamResponse, reply: Reply) -> web.StreamResponse:
        """Drop the connection in the middle of the answer (after ``reply.cut_when``, if any, is set)."""
        if reply.cut_when is not None:
            await asyncio.to_thread(reply.cut_when.wait, 30.0)
        self.cuts += 1
        if request.transport is not None:
            request.transport.abort()
        return resp


class _Writer:
    """Writes a streamed body whole, or cut into ``chunk_bytes`` pieces (the SSE events split at
    arbitrary bytes, as a proxy or a slow network delivers them), or broken off after ``cut_after_writes``."""

    def __init__(self, resp: web.StreamResponse, reply: Reply, request: web.Request) -> None:
        self.resp, self.reply, self.request = resp, reply, request
        self.pending = b""
        self.pieces = 0
        self.cut = False

    async def write(self, data: bytes) -> None:
        if self.cut:
            return
        size = self.reply.chunk_bytes
        if not size:
            await self._piece(data)
            return
        self.pending += data
        while len(self.pending) >= size and not self.cut:
            piece, self.pending = self.pending[:size], self.pending[size:]
            await self._piece(piece)

    async def _piece(self, data: bytes) -> None:
        if self.reply.cut_after_writes is not None and self.pieces >= self.reply.cut_after_writes:
            self.cut = True
            if self.request.transport is not None:
                self.request.transport.close()  # the connection drops, no end of the chunked body
            return
        if self.pieces and self.reply.chunk_bytes and self.reply.token_delay:
            await asyncio.sleep(self.reply.token_delay)
        self.pieces += 1
        await self.resp.write(data)

    async def end(self) -> web.StreamResponse:
        if self.pending and not self.cut:
            await self._piece(self.pending)
        if not self.cut:
            await self.resp.write_eof()
        return self.resp


def break_first(reply: Callable[[dict[str, Any]], Reply], after: int,
                when: threading.Event | None = None) -> Script:
    """A script whose first request breaks after ``after`` pieces of what ``reply`` answers (the model
    round is then retried); every later request is answered in full."""
    seen = [0]

    def script(body: dict[str, Any]) -> Reply:
        seen[0] += 1
        answer = reply(body)
        if seen[0] == 1:
            return dataclasses.replace(answer, cut_after=after, cut_when=when)
        return answer

    return script


def _words(text: str) -> list[str]:
    import re

    return re.findall(r"\S+\s*|\s+", text) if text else []
