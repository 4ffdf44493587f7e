"""Client-side budgets stay bounded in a process that runs for weeks, and are shared fairly."""

from __future__ import annotations

import pytest

from bots.core.ratelimit import SlidingWindow
from bots.slack.limits import PostBudgets, StreamBudget, fair_interval


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


def test_fair_interval_gives_a_few_callers_the_unused_budget_then_shares_it():
    window = SlidingWindow(48, 61.0)
    # Four messages streaming by edits, six calls kept for finals: room for many rounds at the base pace.
    assert fair_interval(window, 1.0, 4, reserve=6, now=100.0) == 1.0
    for i in range(37):
        window.record(now=100.0 + i * 0.1)
    assert fair_interval(window, 1.0, 4, reserve=6, now=104.0) == 1.0  # 37 used + 4 still below 42
    window.record(now=104.0)
    # No room for another round of all four: each gets its share of the window's 42 calls.
    assert fair_interval(window, 1.0, 4, reserve=6, now=104.5) == pytest.approx(4 * 61.0 / 42)
    assert fair_interval(window, 1.0, 4, reserve=6, now=170.0) == 1.0  # the window moved on


def test_stream_appends_share_the_same_rule():
    budget = StreamBudget(append=10, window=60.0)
    budget.streams = 3
    assert budget.append_interval(0.8, now=0.0) == 0.8
    for _ in range(8):
        budget.append.record(now=1.0)
    assert budget.append_interval(0.8, now=2.0) == pytest.approx(3 * 60.0 / 10)
