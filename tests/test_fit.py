"""Cutting text so that its rendering fits a platform limit."""

from __future__ import annotations

import random

import pytest

from bots.core.fit import chunks, fit
from bots.slack.mrkdwn import escape


def code(text: str) -> str:
    return "```" + escape(text) + "```"


def samples(n: int = 100) -> list[tuple[str, int]]:
    rng = random.Random(7)
    return [("".join(rng.choice("<&>`ab\n") for _ in range(rng.randint(0, 3000))), rng.randint(20, 500))
            for _ in range(n)]


@pytest.mark.parametrize("text,budget", samples())
def test_fit_keeps_the_longest_prefix_within_the_budget(text, budget):
    shown, left = fit(text, budget, code)
    kept = len(text) - left
    assert len(shown) <= budget and shown == code(text[:kept])
    assert left == 0 or len(code(text[: kept + 1])) > budget


@pytest.mark.parametrize("text,budget", samples(30))
def test_chunks_cover_the_text_in_order(text, budget):
    pieces, left = chunks(text, budget, code, limit=1000)
    assert left == 0 and all(len(p) <= budget for p in pieces)
    assert "".join(p[3:-3] for p in pieces) == escape(text)


def test_chunks_count_what_does_not_fit():
    pieces, left = chunks("<" * 100, 3 + 8 + 3, code, limit=3)  # two characters a piece
    assert len(pieces) == 3 and left == 94
