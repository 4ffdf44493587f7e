"""BoundedCache: the one bounded map every adapter process uses."""

from __future__ import annotations

import pytest

from bots.core.cache import BoundedCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_least_recently_used_entries_go_first() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache["a"] = 1
    cache["b"] = 2
    assert cache["a"] == 1  # "a" is now the most recently used
    cache["c"] = 3
    assert "b" not in cache
    assert cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2


def test_entries_expire_after_ttl() -> None:
    clock = Clock()
    cache: BoundedCache[str, str] = BoundedCache(10, ttl=5, clock=clock)
    cache["k"] = "v"
    clock.now = 4.9
    assert cache.get("k") == "v"
    clock.now = 10.0
    assert cache.get("k") is None
    assert len(cache) == 0
    with pytest.raises(KeyError):
        cache["k"]


def test_bounded_set_and_pop() -> None:
    seen: BoundedCache[int, None] = BoundedCache(3)
    for i in range(100):
        seen.add(i)
    assert list(seen) == [97, 98, 99]
    assert seen.pop(98, "gone") is None and 98 not in seen
    assert seen.pop(98, "gone") == "gone"
    with pytest.raises(ValueError):
        BoundedCache(0)
