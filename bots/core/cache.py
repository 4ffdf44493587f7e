"""Bounded in-memory maps for long-running adapter processes.

An adapter runs for weeks and sees an unbounded number of threads, users and channels, so every map
it keeps in memory has a size bound (least recently used entries go first) and, where an entry can
go stale, an age bound. One class for every such map, instead of hand-rolled OrderedDict trimming.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Generic, Hashable, Iterator, TypeVar

__all__ = ["BoundedCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MISSING = object()


class BoundedCache(Generic[K, V]):
    """A mapping that keeps at most ``maxsize`` entries, each for at most ``ttl`` seconds (None: no age
    bound). Reading or writing an entry makes it the most recently used one."""

    def __init__(self, maxsize: int, ttl: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, not {maxsize!r}")
        self.maxsize = maxsize
        self.ttl = ttl
        self._clock = clock
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return self.get(key, _MISSING) is not _MISSING  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._items))

    def __getitem__(self, key: K) -> V:
        value = self.get(key, _MISSING)  # type: ignore[arg-type]
        if value is _MISSING:
            raise KeyError(key)
        return value  # type: ignore[return-value]

    def __setitem__(self, key: K, value: V) -> None:
        self._items[key] = (self._clock(), value)
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)

    def __delitem__(self, key: K) -> None:
        del self._items[key]

    def get(self, key: K, default: V | None = None) -> V | None:
        entry = self._items.get(key)
        if entry is None:
            return default
        stored_at, value = entry
        if self.ttl is not None and self._clock() - stored_at > self.ttl:
            del self._items[key]
            return default
        self._items.move_to_end(key)
        return value

    def pop(self, key: K, default: V | None = None) -> V | None:
        value = self.get(key, _MISSING)  # type: ignore[arg-type]
        if value is _MISSING:
            return default
        del self._items[key]
        return value  # type: ignore[return-value]

    def add(self, key: K) -> None:
        """Use the cache as a bounded set."""
        self[key] = None  # type: ignore[assignment]

    def clear(self) -> None:
        self._items.clear()
