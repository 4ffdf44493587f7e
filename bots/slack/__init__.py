"""Slack adapter: Slack events in, durable turns out, answers streamed back into the thread."""

from __future__ import annotations

from typing import Any

__all__ = ["SlackAdapter", "delivery_queue", "run_slack"]


def __getattr__(name: str) -> Any:
    # The adapter (and its platform client) loads on first use: settings alone import nothing heavy.
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
