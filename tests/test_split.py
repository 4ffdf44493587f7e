"""split_message: limits, boundaries and code fences carried across parts."""

from __future__ import annotations

import random

import pytest

from bots.core.split import split_message


def fences_balanced(part: str) -> bool:
    opened = False
    for line in part.split("\n"):
        s = line.strip()
        if s.startswith("```") and not (not opened and "```" in s[3:]):
            opened = not opened
    return not opened


def test_short_text_is_one_part():
    assert split_message("hello", 10) == ["hello"]
    assert split_message("", 10) == []
    assert split_message("  \n ", 10) == []


def test_bad_limit():
    with pytest.raises(ValueError):
        split_message("x", 0)


def test_prefers_paragraphs():
    text = "a" * 40 + "\n\n" + "b" * 40 + "\n" + "c" * 10
    parts = split_message(text, 60)
    assert parts == ["a" * 40, "b" * 40 + "\n" + "c" * 10]


def test_lines_then_words_then_hard_cut():
    assert split_message("aaaa\nbbbb\ncccc", 10) == ["aaaa\nbbbb", "cccc"]
    assert split_message("one two three four", 9) == ["one two", "three", "four"]
    assert split_message("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_code_fence_closed_and_reopened_with_language():
    code = "\n".join(f"line {i}" for i in range(40))
    text = "Intro paragraph.\n\n```python\n" + code + "\n```\n\nAfter."
    parts = split_message(text, 120)
    assert len(parts) > 2
    for part in parts:
        assert len(part) <= 120
        assert fences_balanced(part), part
    assert parts[1].startswith("```python\n")
    # Nothing of the code is lost or duplicated.
    body = "\n".join(
        line for part in parts for line in part.split("\n") if not line.startswith("```")
    )
    for i in range(40):
        assert body.count(f"line {i}\n") + body.endswith(f"line {i}") >= 1
    assert body.count("line 39") == 1


def test_inline_fence_does_not_open_a_block():
    text = "use ```x``` here\n" + "word " * 50
    parts = split_message(text, 60)
    assert all(not p.endswith("\n```") for p in parts)


@pytest.mark.parametrize("seed", range(30))
def test_random_texts_keep_words_and_limits(seed):
    rng = random.Random(seed)
    chunks = []
    for _ in range(rng.randint(5, 60)):
        kind = rng.random()
        if kind < 0.2:
            lines = [" ".join(rng.choice(["x = 1", "def f():", "return", "y"]) for _ in range(3))
                     for _ in range(rng.randint(1, 15))]
            chunks.append("```" + rng.choice(["", "py", "bash"]) + "\n" + "\n".join(lines) + "\n```")
        else:
            words = [f"w{rng.randint(0, 999)}" for _ in range(rng.randint(1, 40))]
            chunks.append(" ".join(words))
    text = rng.choice(["\n\n", "\n"]).join(chunks)
    limit = rng.randint(40, 400)
    parts = split_message(text, limit)
    assert all(len(p) <= limit for p in parts)
    assert all(fences_balanced(p) for p in parts)
    strip = lambda s: [w for w in s.split() if not w.startswith("```")]
    assert strip("\n".join(parts)) == strip(text)


def test_sixty_thousand_characters():
    code = "\n".join(f"    value_{i} = compute({i})" for i in range(600))
    text = ("Some prose. " * 200 + "\n\n") * 10 + "```python\n" + code + "\n```\n" + "Tail " * 100
    assert len(text) > 40_000
    parts = split_message(text, 3_000)
    assert all(len(p) <= 3_000 for p in parts)
    assert all(fences_balanced(p) for p in parts)
    assert sum(p.startswith("```python\n") for p in parts) >= 2
