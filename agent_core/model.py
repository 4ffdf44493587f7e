"""Chat models an LLM round can call: any OpenAI-compatible server, or the offline demo model.

A model streams: ``complete`` calls ``on_delta`` for each piece of text as it arrives and returns the
whole round. Retries belong to Temporal, so the OpenAI client is built with ``max_retries=0`` and
errors are mapped to retryable or non-retryable ``ApplicationError``s here.

An error's message ends up in the chat thread (it is the failed turn's reason), so it says what failed,
the HTTP status and whether it is retried, and nothing the server wrote: a server's error text can quote
the request, a key or an internal address. That text goes to the worker log, where the secret filter
runs.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import re
from typing import Any, Awaitable, Callable, Protocol

from temporalio.exceptions import ApplicationError

from .chat_stream import ChatStreamReader, MalformedStream
from .context import SUMMARY_INSTRUCTIONS
from .contract import ErrorType
from .types import LLMResult, ToolCall

log = logging.getLogger(__name__)

DeltaCallback = Callable[[str], Awaitable[None]]

_RETRYABLE_STATUS = {408, 409, 429}
_SERVER_TEXT_LOGGED = 4000  # characters of a server's error body written to the log
_SEE_LOG = "the worker log has the server's full answer"
# What a status means for whoever reads the chat, and what to check.
_STATUS_HINTS = {
    400: "bad request: the server rejected the request",
    401: "unauthorised: check OPENAI_API_KEY",
    403: "forbidden: check the API key's access to the model",
    404: "not found: check DURABOT_MODEL and OPENAI_BASE_URL",
    408: "request timeout",
    409: "conflict",
    413: "request too large",
    422: "the server could not process the request",
    429: "rate limited",
}


class ChatModel(Protocol):
    @property
    def identity(self) -> str:
        """What the configuration fingerprint records of this model (no secrets)."""

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, on_delta: DeltaCallback
    ) -> LLMResult: ...


class OpenAIChatModel:
    """Chat Completions with streaming and tool calls on any OpenAI-compatible server."""

    def __init__(
        self,
        model: str = "gpt-4o-mini",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        temperature: float | None = None,
        timeout: float = 120.0,
        http_client: Any = None,
    ) -> None:
        self.model = model
        self.api_key = api_key
        self.base_url = base_url
        self.temperature = temperature
        self.timeout = timeout
        self._http_client = http_client
        self._client: Any = None

    @property
    def identity(self) -> str:
        return f"openai:{self.model}"

    def renamed(self, model: str) -> "OpenAIChatModel":
        """The same server and client under another model name (a profile's model)."""
        other = copy.copy(self)
        other.model = model
        return other

    def _get_client(self) -> Any:
        if self._client is None:
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(
                api_key=self.api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
                base_url=self.base_url or os.environ.get("OPENAI_BASE_URL") or None,
                max_retries=0,  # Temporal owns retries
                timeout=self.timeout,
                http_client=self._http_client,
            )
        return self._client

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, on_delta: DeltaCallback
    ) -> LLMResult:
        import openai

        # The body rides in extra_body, which the client sends as it is: its typed transform of the
        # parameters costs about a millisecond per message on every request (hundreds of ms for a long
        # transcript), runs over every tool's schema too, and changes nothing in plain JSON.
        body: dict[str, Any] = {"messages": messages, "stream_options": {"include_usage": True}}
        if tools:
            body["tools"] = tools
        if self.temperature is not None:
            body["temperature"] = self.temperature
        kwargs: dict[str, Any] = {"model": self.model, "messages": [], "stream": True, "extra_body": body}
        reader = ChatStreamReader(on_delta)
        try:
            # The raw response, read here: the client's typed stream builds a pydantic object for every
            # chunk and runs each through several layers of generators, which was the largest part of a
            # worker's CPU per turn. Requests, status errors and connection errors stay the client's.
            async with self._get_client().chat.completions.with_streaming_response.create(**kwargs) as response:
                await reader.read(response.http_response)
        except openai.APIStatusError as exc:
            raise _status_error(exc, self.model) from None
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            cause = exc.__cause__ or exc.__context__
            log.warning("model %r: the model server is unreachable (%s%s); Temporal retries the round",
                        self.model, _describe(exc), f", caused by {_describe(cause)}" if cause else "")
            raise ApplicationError(
                f"the model server is unreachable ({type(exc).__name__}; retried automatically); {_SEE_LOG}",
                {"kind": "timeout"}, type=ErrorType.MODEL.value,
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError, MalformedStream, openai.APIError) as exc:
            log.warning("model %r: malformed response from the model server: %s", self.model, _describe(exc))
            raise ApplicationError(
                f"model returned a malformed response ({type(exc).__name__}; not retried); check "
                "OPENAI_BASE_URL points at an OpenAI-compatible server", {"kind": "malformed"},
                type=ErrorType.MODEL.value, non_retryable=True,
            ) from None
        return reader.result()


# How servers say a request is longer than the model's context: OpenAI's error code, and the words
# of vLLM, llama.cpp, Ollama and LiteLLM (read from the server's text, which is never shown).
_CONTEXT_WORDS = re.compile(
    r"context[_ ]length|context window|maximum context|too many tokens|prompt is too long|exceeds the context",
    re.IGNORECASE)


def _context_exceeded(exc: Any) -> bool:
    if getattr(exc, "code", None) == "context_length_exceeded":
        return True
    return exc.status_code in (400, 413) and bool(_CONTEXT_WORDS.search(_server_text(exc)))


def _status_error(exc: Any, model: str) -> ApplicationError:
    status = exc.status_code
    if _context_exceeded(exc):
        log.warning("model %r: the request is longer than the model's context (HTTP %s): %s", model, status,
                    _server_text(exc))
        return ApplicationError(
            f"the conversation is too long for the model's context window (HTTP {status}, context length "
            "exceeded), even after trimming it to a smaller budget; set DURABOT_CONTEXT_TOKENS to the "
            f"model's context window, or start a new thread; {_SEE_LOG}",
            {"kind": "context", "status": status}, type=ErrorType.CONTEXT_TOO_LONG.value, non_retryable=True,
        )
    retryable = status in _RETRYABLE_STATUS or status >= 500
    hint = _STATUS_HINTS.get(status) or ("server error" if status >= 500 else "the request was refused")
    log.warning("model %r: the model server answered HTTP %s (%s): %s", model, status,
                "retried" if retryable else "not retried", _server_text(exc))
    message = (f"the model server answered HTTP {status} ({hint}; "
               f"{'retried automatically' if retryable else 'not retried'}); {_SEE_LOG}")
    details = {"kind": _status_kind(status), "status": status}
    if retryable:
        delay = _retry_after(exc.response.headers if exc.response is not None else {})
        return ApplicationError(message, details, type=ErrorType.MODEL.value, next_retry_delay=delay)
    return ApplicationError(message, details, type=ErrorType.MODEL.value, non_retryable=True)


def _status_kind(status: int) -> str:
    if status in (408, 429):
        return "timeout" if status == 408 else "rate_limit"
    return "server" if status >= 500 else "client"


def failure_kind(exc: ApplicationError) -> str:
    """What kind of model failure ``exc`` reports (rate_limit, timeout, server, client, malformed,
    other), from the details the model put in it: a message is for people and may change."""
    first = exc.details[0] if exc.details else None
    return str(first.get("kind", "other")) if isinstance(first, dict) else "other"


def _server_text(exc: Any) -> str:
    """What the server wrote: the raw body when it can be read, else the parsed one."""
    text = ""
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            text = response.text
        except Exception:  # a streamed body that was never read
            text = ""
    if not text:
        body = getattr(exc, "body", None)
        text = json.dumps(body, default=str) if body is not None else str(getattr(exc, "message", exc))
    return text[:_SERVER_TEXT_LOGGED]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _retry_after(headers: Any) -> Any:
    from datetime import timedelta

    value = headers.get("retry-after") if headers else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return timedelta(seconds=min(max(seconds, 0.0), 300.0))


class DemoModel:
    """An offline stand-in for a real model, so every feature can be tried without an API key.

    It calls ``get_time`` when asked the time, ``deploy`` when asked to deploy something, and
    otherwise answers with a short canned reply that quotes the question.
    """

    identity = "demo"

    def __init__(self, token_delay: float = 0.02) -> None:
        self.token_delay = token_delay

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, on_delta: DeltaCallback
    ) -> LLMResult:
        tool_names = {t["function"]["name"] for t in tools or []}
        if messages and str(messages[0].get("content") or "").startswith(SUMMARY_INSTRUCTIONS[:40]):
            # Asked to summarise older turns: keep the first line of each of the user's messages.
            said = re.findall(r"^User[^:]*: (.{0,120})", str(messages[-1].get("content") or ""), re.MULTILINE)
            return LLMResult(text="The user said: " + " / ".join(said), tool_calls=[], finish_reason="stop")
        last = messages[-1] if messages else {"role": "user", "content": ""}
        if last["role"] == "tool":
            text = f"Done. The tool said: {last.get('content') or '(nothing)'}"
            return await self._say(text, on_delta)
        content = last.get("content") or ""
        parts = content if isinstance(content, list) else []  # a message with files
        question = " ".join(p.get("text", "") for p in parts[:1] if p.get("type") == "text") if parts else str(content)
        images = sum(1 for p in parts if p.get("type") == "image_url")
        lowered = question.lower()
        if "csv" in lowered and "make_csv" in tool_names:
            words = re.findall(r"[A-Za-z]+", question)[:20]
            rows = [["word", "length"], *([w, str(len(w))] for w in words)]
            return LLMResult(text="", tool_calls=[_call("make_csv", {"rows": rows, "name": "words.csv"})],
                             finish_reason="tool_calls")
        if "time" in lowered and "get_time" in tool_names:
            zone = _first(r"\bin ([A-Za-z_/]+)", question) or "UTC"
            return LLMResult(text="", tool_calls=[_call("get_time", {"tz": zone})], finish_reason="tool_calls")
        if "deploy" in lowered and "deploy" in tool_names:
            service = _first(r"deploy\s+(?:the\s+)?([\w-]+)", lowered) or "api"
            return LLMResult(
                text="", tool_calls=[_call("deploy", {"service": service})], finish_reason="tool_calls"
            )
        turns = sum(1 for m in messages if m["role"] == "user")
        files = sum(1 for p in parts if p.get("type") == "text" and p.get("text", "").startswith("[attachment"))
        seen = f" I received {files} file(s), {images} of them image(s)." if files else ""
        text = (
            f"(demo model) You said: \u201c{question.strip()[:200]}\u201d.{seen} This is turn {turns} of our "
            "conversation. Ask me the time, to deploy a service or to make a CSV, to see tools, approvals "
            "and files."
        )
        return await self._say(text, on_delta)

    async def _say(self, text: str, on_delta: DeltaCallback) -> LLMResult:
        for piece in re.findall(r"\S+\s*", text):
            await asyncio.sleep(self.token_delay)
            await on_delta(piece)
        return LLMResult(text=text, tool_calls=[], finish_reason="stop")


def _first(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text)
    return match.group(1) if match else None


def _call(name: str, args: dict[str, Any]) -> ToolCall:
    import uuid

    return ToolCall(id=f"call_{uuid.uuid4().hex[:12]}", name=name, arguments=json.dumps(args))
