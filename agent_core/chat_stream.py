"""Reads a streamed Chat Completions answer: text deltas, tool calls, the finish reason and usage.

The model reads the HTTP body of the openai client's raw streaming response itself instead of
iterating the client's typed stream. That stream builds a pydantic object for every chunk and passes
each chunk through several layers of generators; it was the largest single share of a worker's CPU
per turn. Here each server-sent event is split out of the bytes as they come, JSON-decoded once, and
only the fields a round uses are read. What the typed stream does that a round relies on is kept:

- ``data: [DONE]`` ends the answer; an event whose JSON carries ``error`` raises ``openai.APIError``
  with the server's message, as the client does;
- a body that breaks off raises ``openai.APITimeoutError`` or ``openai.APIConnectionError``;
- lines end in LF, CRLF or CR, split anywhere across network reads (the SSE rules); comments and
  other fields are skipped; an event not ended by a blank line when the body ends is dropped.

A chunk that is not what the API describes (not JSON, not an object, text that is not a string)
raises ``json.JSONDecodeError``, ``UnicodeDecodeError`` or ``MalformedStream``: the model maps them
to one non-retryable error. Fields a round does not use (``reasoning_content``, ``logprobs``,
``refusal``...) are never shown as text.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Awaitable, Callable

from .types import LLMResult, ToolCall

DRAIN_SECONDS = 0.1  # how long the rest of the body may take after [DONE] (the connection is kept)


class MalformedStream(ValueError):
    """A chunk of the stream is not shaped as the Chat Completions API describes."""


class ChatStreamReader:
    """Feeds on the body of one streamed completion; ``result()`` is the round once it ended."""

    def __init__(self, on_delta: Callable[[str], Awaitable[None]]) -> None:
        self.on_delta = on_delta
        self.text: list[str] = []
        self.calls: dict[int, dict[str, str]] = {}
        self.finish: str | None = None
        self.usage = (0, 0)
        self._pending = b""  # the unfinished last line of what arrived so far
        self._data: list[bytes] = []  # data lines of the event being assembled
        self._event = False  # the event being assembled has an ``event:`` field

    async def read(self, response: Any) -> None:
        """Reads ``response`` (an httpx response of the openai client) to its end or ``[DONE]``."""
        import openai

        chunks = response.aiter_bytes()
        try:
            async for chunk in chunks:
                for data in self.feed(chunk):
                    if data.startswith(b"[DONE]"):
                        await _drain(chunks)
                        return
                    await self.handle(data, response)
            for data in self.feed(b"", end=True):
                if data.startswith(b"[DONE]"):
                    return
                await self.handle(data, response)
        except _timeout_errors() as exc:
            raise openai.APITimeoutError(request=response.request) from exc
        except _request_errors() as exc:
            raise openai.APIConnectionError(request=response.request) from exc

    def feed(self, chunk: bytes, end: bool = False) -> list[bytes]:
        """The data of every event ``chunk`` completes, in order."""
        buf = self._pending + chunk if self._pending else chunk
        if end and buf.endswith(b"\r"):
            buf += b"\n"
        if b"\r" in buf:
            held = b""
            if buf.endswith(b"\r"):  # may be the first half of a CRLF split across reads
                buf, held = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + held
        lines = buf.split(b"\n")
        self._pending = lines.pop()
        if end:
            self._pending = b""  # an unterminated last line ends no event
        out: list[bytes] = []
        for line in lines:
            if not line:
                if self._data or self._event:
                    out.append(b"\n".join(self._data))
                self._data, self._event = [], False
            elif line[0] == 58:  # ":" starts a comment (servers send them to keep the connection)
                continue
            else:
                name, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"data":
                    self._data.append(value)
                elif name == b"event":
                    self._event = True
        return out

    async def handle(self, data: bytes, response: Any = None) -> None:
        """One event's data: a chunk of the answer, usage, or an error the server streamed."""
        chunk = json.loads(data.decode("utf-8"))
        if not isinstance(chunk, dict):
            raise MalformedStream(f"a chunk is a JSON {type(chunk).__name__}, not an object")
        if chunk.get("error"):
            _raise_streamed_error(chunk["error"], response)
        usage = chunk.get("usage")
        if usage:
            if not isinstance(usage, dict):
                raise MalformedStream("usage is not an object")
            self.usage = (_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")))
        choices = chunk.get("choices")
        if not choices:
            return
        choice = choices[0] if isinstance(choices, list) else None
        if not isinstance(choice, dict):
            raise MalformedStream("choices is not a list of objects")
        delta = choice.get("delta")
        if delta:
            if not isinstance(delta, dict):
                raise MalformedStream("a delta is not an object")
            content = delta.get("content")
            if content:
                if not isinstance(content, str):
                    raise MalformedStream("a delta's content is not a string")
                self.text.append(content)
                await self.on_delta(content)
            tool_calls = delta.get("tool_calls")
            if tool_calls:
                self._tool_calls(tool_calls)
        finish = choice.get("finish_reason")
        if finish:
            self.finish = str(finish)

    def _tool_calls(self, tool_calls: Any) -> None:
        if not isinstance(tool_calls, list):
            raise MalformedStream("tool_calls is not a list")
        for position, tc in enumerate(tool_calls):
            if not isinstance(tc, dict):
                raise MalformedStream("a tool call is not an object")
            index = tc.get("index")
            slot = self.calls.setdefault(index if isinstance(index, int) else position,
                                         {"id": "", "name": "", "arguments": ""})
            if tc.get("id"):
                slot["id"] = _text(tc["id"])
            function = tc.get("function")
            if function:
                if not isinstance(function, dict):
                    raise MalformedStream("a tool call's function is not an object")
                slot["name"] += _text(function.get("name"))
                slot["arguments"] += _text(function.get("arguments"))

    def result(self) -> LLMResult:
        tool_calls = [
            ToolCall(id=c["id"] or f"call_{i}", name=c["name"], arguments=c["arguments"] or "{}")
            for i, c in sorted(self.calls.items())
        ]
        return LLMResult(text="".join(self.text), tool_calls=tool_calls, finish_reason=self.finish,
                         prompt_tokens=self.usage[0], completion_tokens=self.usage[1])


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Reads what follows ``[DONE]`` (normally only the end of the body) so the connection can be
    reused; a server that keeps it open past ``DRAIN_SECONDS`` gets it closed instead."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in chunks:
                pass
    except (TimeoutError, *_request_errors()):
        pass


def _raise_streamed_error(error: Any, response: Any) -> None:
    import openai

    message = error.get("message") if isinstance(error, dict) else None
    if not message or not isinstance(message, str):
        message = "An error occurred during streaming"
    raise openai.APIError(message=message, request=response.request if response is not None else None,
                          body=error)


def _count(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedStream("a usage count is not a number")
    return int(value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedStream("a tool call's id, name or arguments is not a string")
    return value


def _timeout_errors() -> tuple[type[BaseException], ...]:
    try:  # the errors the client itself maps to APITimeoutError, whichever httpx it runs on
        from openai._httpx2 import timeout_exceptions

        return timeout_exceptions()
    except ImportError:
        import httpx

        return (httpx.TimeoutException,)


def _request_errors() -> tuple[type[BaseException], ...]:
    try:
        from openai._httpx2 import request_exceptions

        return request_exceptions()
    except ImportError:
        import httpx

        return (httpx.RequestError,)
