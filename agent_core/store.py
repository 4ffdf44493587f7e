"""Transcript store: the conversation's messages by sequence number, read by LLM rounds.

The workflow passes a ``TranscriptRef`` (a range of sequence numbers plus the few messages the store
has not seen yet) instead of the transcript, so history per turn stays flat however long the
conversation. The store is a cache of what Temporal already recorded: if it lost data, the round
raises ``TranscriptMissing`` and the workflow sends its bounded copy once to refill it.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from typing import Protocol

from .types import BlobRef, ChatMessage, ToolCall


def encode_message(msg: ChatMessage) -> str:
    return json.dumps(dataclasses.asdict(msg), separators=(",", ":"))


_FIELDS = frozenset(f.name for f in dataclasses.fields(ChatMessage))


def decode_message(raw: str | bytes) -> ChatMessage:
    data = json.loads(raw)
    data["tool_calls"] = [ToolCall(**c) for c in data.get("tool_calls") or []]
    data["attachments"] = [BlobRef(**a) for a in data.get("attachments") or []]
    # A message written by a newer worker may carry fields this one does not know: ignore them.
    return ChatMessage(**{k: v for k, v in data.items() if k in _FIELDS})


class TranscriptStore(Protocol):
    async def write(self, conversation_id: str, first_seq: int, messages: list[ChatMessage]) -> None:
        """Store ``messages`` at sequence numbers ``first_seq, first_seq + 1, ...`` (idempotent)."""

    async def read(self, conversation_id: str, start_seq: int, end_seq: int) -> list[ChatMessage] | None:
        """Messages ``[start_seq, end_seq)``, or None if any of them is missing."""

    async def close(self) -> None: ...

    # Optional, for a store shared by every worker process that outlives them (the Redis store): a
    # model round's checkpoints (inline.py). A store without them runs no local tool inside a model
    # round's activity: a retry in another process would not find what the crashed one did.
    # async def save_steps(self, key: str, data: str, ttl: int) -> None  -- replace, expire after ttl s
    # async def load_steps(self, key: str) -> str | None


async def write_then_read(store: TranscriptStore, conversation_id: str, first_seq: int,
                          messages: list[ChatMessage], start_seq: int, end_seq: int) -> list[ChatMessage] | None:
    """``store.write`` then ``store.read``, in one round trip with a store that offers ``write_read``
    (the Redis store): an LLM round stores the messages it brings and reads its window at once."""
    combined = getattr(store, "write_read", None)
    if combined is not None:
        return await combined(conversation_id, first_seq, messages, start_seq, end_seq)
    if messages:
        await store.write(conversation_id, first_seq, messages)
    return await store.read(conversation_id, start_seq, end_seq)


class InMemoryTranscriptStore:
    """Transcripts of this process, at most ``keep`` messages each, ``max_conversations`` in all."""

    def __init__(self, keep: int = 1000, max_conversations: int = 10_000) -> None:
        self._data: OrderedDict[str, dict[int, ChatMessage]] = OrderedDict()
        self._keep = keep
        self._max = max_conversations

    async def write(self, conversation_id: str, first_seq: int, messages: list[ChatMessage]) -> None:
        conv = self._data.get(conversation_id)
        if conv is None:
            conv = self._data[conversation_id] = {}
            while len(self._data) > self._max:
                self._data.popitem(last=False)
        else:
            self._data.move_to_end(conversation_id)
        for i, msg in enumerate(messages):
            conv[first_seq + i] = msg
        if len(conv) > self._keep:
            cutoff = max(conv) - self._keep
            for seq in [s for s in conv if s <= cutoff]:
                del conv[seq]

    async def read(self, conversation_id: str, start_seq: int, end_seq: int) -> list[ChatMessage] | None:
        conv = self._data.get(conversation_id, {})
        out = []
        for seq in range(start_seq, end_seq):
            msg = conv.get(seq)
            if msg is None:
                return None
            out.append(msg)
        return out

    def forget(self, conversation_id: str) -> None:
        self._data.pop(conversation_id, None)

    async def close(self) -> None:
        self._data.clear()
