"""The transcript window a conversation workflow keeps: a bounded copy of the transcript's tail.

It rides in the carry across continue-as-new and (on a resync) in a model round's input, so it stays under a
count of messages and a budget of encoded bytes (``limits.WINDOW_BYTES``). The transcript store holds
the whole transcript; activities reach it by reference (``TranscriptRef``). Pure and deterministic.
"""

from __future__ import annotations

from . import limits
from .types import ChatMessage, TranscriptRef

SLACK = 20  # messages kept beyond what one model round sees, so trimming is not done at every append


class TranscriptWindow:
    def __init__(self, messages: list[ChatMessage], next_seq: int) -> None:
        self.messages = list(messages)
        self.sizes = [limits.message_bytes(m) for m in self.messages]
        self.bytes = sum(self.sizes)
        self._bound()
        self.next_seq = next_seq  # sequence number the next transcript message gets
        self.synced_seq = next_seq  # assume the store has them; a miss triggers one resync

    def append(self, keep: int, *messages: ChatMessage) -> None:
        """Add messages, keeping at most ``keep`` (plus some slack) and the byte budget."""
        sizes = [limits.message_bytes(m) for m in messages]
        self.messages.extend(messages)
        self.sizes.extend(sizes)
        self.bytes += sum(sizes)
        self.next_seq += len(messages)
        limit = keep + SLACK
        if len(self.messages) > limit:
            cut = len(self.messages) - limit
            self.bytes -= sum(self.sizes[:cut])
            del self.messages[:cut], self.sizes[:cut]
        if self.bytes > limits.WINDOW_BYTES:
            self._bound()

    def _bound(self) -> None:
        # The oldest texts give way to stubs, and stubs past the budget (a very long window) to
        # nothing. The transcript store still holds the whole messages it was sent; the model is told
        # of any it cannot get.
        self.bytes = limits.bound_messages(self.messages, self.sizes, limits.WINDOW_BYTES)
        cut = 0
        while self.bytes > limits.WINDOW_BYTES and cut < len(self.messages) - 1:
            self.bytes -= self.sizes[cut]
            cut += 1
        del self.messages[:cut], self.sizes[:cut]

    def ref(self, conversation_id: str, context_messages: int, resync: bool) -> TranscriptRef:
        """How the next model round finds the last ``context_messages`` messages; ``resync``: the
        store lost messages."""
        return self.ref_from(conversation_id, max(0, self.next_seq - context_messages), resync)

    def ref_from(self, conversation_id: str, start: int, resync: bool) -> TranscriptRef:
        """How an activity finds messages ``[start, next_seq)`` (the store has more than the window)."""
        window_start = self.next_seq - len(self.messages)
        first_unsynced = window_start if resync else max(self.synced_seq, window_start)
        return TranscriptRef(
            conversation_id=conversation_id, start_seq=start, end_seq=self.next_seq,
            unsynced=self.messages[first_unsynced - window_start:], resync=resync,
        )

    def synced(self) -> None:
        """A model round wrote the unsynced tail to the store."""
        self.synced_seq = self.next_seq

    def open_tool_calls(self, note: str) -> list[ChatMessage]:
        """Tool results saying ``note`` for the last assistant message's unanswered tool calls."""
        answered = {m.tool_call_id for m in self.messages if m.role == "tool"}
        for m in reversed(self.messages):
            if m.role == "assistant" and m.tool_calls:
                return [ChatMessage(role="tool", content=note, tool_call_id=c.id, name=c.name)
                        for c in m.tool_calls if c.id not in answered]
            if m.role == "user":
                return []
        return []
