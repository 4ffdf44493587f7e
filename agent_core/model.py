"""Chat models an LLM round can call: any OpenAI-compatible server, or the offline demo model.

A model streams: ``complete`` calls ``on_delta`` for each piece of text as it arrives and returns the
whole round. Retries belong to Temporal, so the OpenAI client is built with ``max_retries=0`` and
errors are mapped to retryable or non-retryable ``ApplicationError``s here.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from typing import Any, Awaitable, Callable, Protocol

from temporalio.exceptions import ApplicationError

from .errors import MODEL_ERROR
from .types import LLMResult, ToolCall

DeltaCallback = Callable[[str], Awaitable[None]]

_RETRYABLE_STATUS = {408, 409, 429}


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

        kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True}
        if tools:
            kwargs["tools"] = tools
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish: str | None = None
        usage = (0, 0)
        try:
            stream = await self._get_client().chat.completions.create(**kwargs)
            async for chunk in stream:
                if getattr(chunk, "usage", None):
                    usage = (chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                delta = choice.delta
                if delta is not None and delta.content:
                    text.append(delta.content)
                    await on_delta(delta.content)
                for tc in (delta.tool_calls or []) if delta is not None else []:
                    slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                    if tc.id:
                        slot["id"] = tc.id
                    if tc.function is not None:
                        slot["name"] += tc.function.name or ""
                        slot["arguments"] += tc.function.arguments or ""
                if choice.finish_reason:
                    finish = choice.finish_reason
        except openai.APIStatusError as exc:
            raise _status_error(exc) from None
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise ApplicationError(f"model server unreachable: {exc}", type=MODEL_ERROR) from None
        except (json.JSONDecodeError, openai.APIError) as exc:
            raise ApplicationError(
                f"model returned a malformed response ({type(exc).__name__}); check OPENAI_BASE_URL points at "
                "an OpenAI-compatible server", type=MODEL_ERROR, non_retryable=True,
            ) from None
        tool_calls = [
            ToolCall(id=c["id"] or f"call_{i}", name=c["name"], arguments=c["arguments"] or "{}")
            for i, c in sorted(calls.items())
        ]
        return LLMResult(
            text="".join(text), tool_calls=tool_calls, finish_reason=finish,
            prompt_tokens=usage[0], completion_tokens=usage[1],
        )


def _status_error(exc: Any) -> ApplicationError:
    status = exc.status_code
    detail = _error_detail(exc)
    message = f"model server answered HTTP {status}: {detail}"
    if status in _RETRYABLE_STATUS or status >= 500:
        delay = _retry_after(exc.response.headers if exc.response is not None else {})
        return ApplicationError(message, type=MODEL_ERROR, next_retry_delay=delay)
    return ApplicationError(message, type=MODEL_ERROR, non_retryable=True)


def _error_detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
    return str(getattr(exc, "message", exc))[:300]


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
        last = messages[-1] if messages else {"role": "user", "content": ""}
        if last["role"] == "tool":
            text = f"Done. The tool said: {last.get('content') or '(nothing)'}"
            return await self._say(text, on_delta)
        question = str(last.get("content") or "")
        lowered = question.lower()
        if "time" in lowered and "get_time" in tool_names:
            zone = _first(r"\bin ([A-Za-z_/]+)", question) or "UTC"
            return LLMResult(text="", tool_calls=[_call("get_time", {"tz": zone})], finish_reason="tool_calls")
        if "deploy" in lowered and "deploy" in tool_names:
            service = _first(r"deploy\s+(?:the\s+)?([\w-]+)", lowered) or "api"
            return LLMResult(
                text="", tool_calls=[_call("deploy", {"service": service})], finish_reason="tool_calls"
            )
        turns = sum(1 for m in messages if m["role"] == "user")
        text = (
            f"(demo model) You said: \u201c{question.strip()[:200]}\u201d. This is turn {turns} of our "
            "conversation. Ask me the time, or to deploy a service, to see tools and approvals."
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
