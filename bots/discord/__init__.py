"""The Discord adapter: one conversation per thread, streamed replies, approval buttons, /durabot."""

from __future__ import annotations

from typing import Any

__all__ = ["DiscordAdapter", "invite_url", "run_discord"]


def __getattr__(name: str) -> Any:
    # The adapter (and its platform client) loads on first use: settings alone import nothing heavy.
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
