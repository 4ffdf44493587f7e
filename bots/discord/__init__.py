"""The Discord adapter: one conversation per thread, streamed replies, approval buttons, /durabot."""

from .app import DiscordAdapter, invite_url, run_discord

__all__ = ["DiscordAdapter", "invite_url", "run_discord"]
