"""Hooks: code that runs around every LLM round and tool call, on the worker.

A hook group subclasses ``Hooks`` and overrides any of the four points. Each may inspect, return a
modified value (or None to keep it), or raise ``AbortRun(reason)`` to end the turn with that reason
shown to the user. Hook group names are part of the configuration fingerprint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from .types import LLMResult


class AbortRun(Exception):
    """Raise from a hook to end the turn; the reason is shown to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class HookContext:
    conversation_id: str
    turn_id: str
    attempt: int


class Hooks:
    name = "hooks"

    async def before_llm(self, ctx: HookContext, messages: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        return None

    async def after_llm(self, ctx: HookContext, result: LLMResult) -> LLMResult | None:
        return None

    async def before_tool(self, ctx: HookContext, tool: str, args: dict[str, Any]) -> dict[str, Any] | None:
        return None

    async def after_tool(self, ctx: HookContext, tool: str, output: str) -> str | None:
        return None


class RedactSecrets(Hooks):
    """Replaces secrets in tool output before the model (and the transcript) ever sees them."""

    name = "redact-secrets"
    DEFAULT_PATTERNS = (
        r"(?i)\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}",  # API keys of the sk-... kind
        r"\bxox[abposr]-[A-Za-z0-9-]{10,}",  # Slack tokens
        r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key ids
        r"(?i)(?<=password=)[^\s&]+",
        r"(?i)(?<=://)[^/\s'\"<>?#@]+(?:@[^/\s'\"<>?#@]*)*(?=@)",  # a URL's user info (user:password@)
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    )

    def __init__(self, patterns: Iterable[str] = DEFAULT_PATTERNS, values: Iterable[str] = ()) -> None:
        self.patterns = [re.compile(p) for p in patterns]
        self.values = [v for v in values if len(v) >= 4]

    def redact(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, "[redacted]")
        for pattern in self.patterns:
            text = pattern.sub("[redacted]", text)
        return text

    async def after_tool(self, ctx: HookContext, tool: str, output: str) -> str | None:
        return self.redact(output)


class BlockToolArguments(Hooks):
    """Stops the turn when a tool is called with arguments matching a pattern (for example prod)."""

    name = "block-tool-arguments"

    def __init__(self, tool: str, pattern: str, reason: str | None = None) -> None:
        self.tool = tool
        self.pattern = re.compile(pattern)
        self.reason = reason or f"{tool} with arguments matching {pattern!r} is not allowed"

    async def before_tool(self, ctx: HookContext, tool: str, args: dict[str, Any]) -> dict[str, Any] | None:
        if tool == self.tool and any(self.pattern.search(str(v)) for v in args.values()):
            raise AbortRun(self.reason)
        return None
