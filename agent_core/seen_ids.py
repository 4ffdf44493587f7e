"""The message ids a conversation took last, for deduplication: a client retrying a submit, or an
adapter seeing a platform event twice, must not start a second turn. Pure, no I/O."""

from __future__ import annotations

from typing import Iterable

KEPT = 500


class SeenIds:
    def __init__(self, ids: Iterable[str] = ()) -> None:
        self.order: list[str] = list(ids)  # oldest first; carried across runs
        self._set = set(self.order)

    def __contains__(self, message_id: str) -> bool:
        return message_id in self._set

    def add(self, message_id: str) -> None:
        self.order.append(message_id)
        self._set.add(message_id)
        if len(self.order) > KEPT:
            self._set.discard(self.order.pop(0))
