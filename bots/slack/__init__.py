"""Slack adapter: Slack events in, durable turns out, answers streamed back into the thread."""

from .app import SlackAdapter, delivery_queue, run_slack

__all__ = ["SlackAdapter", "delivery_queue", "run_slack"]
