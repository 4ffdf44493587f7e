"""Client-side budgets stay bounded in a process that runs for weeks."""

from __future__ import annotations

from bots.slack.limits import PostBudgets


def test_post_budgets_keep_only_recent_channels_and_keep_their_state():
    budgets = PostBudgets(maxsize=100)
    busy = budgets.get("CBUSY")
    busy.take()
    for i in range(1_000):
        budgets.get(f"C{i}")
        if i % 50 == 0:
            assert budgets.get("CBUSY") is busy  # a channel in use keeps its bucket (and its pause)
    assert len(budgets) <= 100
    assert budgets.get("C0") is not None and len(budgets) <= 100
