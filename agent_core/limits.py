"""Byte budgets for everything that crosses into Temporal, measured the way Temporal encodes it.

Temporal refuses a payload past 2 MB, and a workflow task that emits one fails and is retried for
ever: the conversation is stuck. Its JSON converter escapes every non-ASCII character (``json.dumps``
with the default ``ensure_ascii``), so an accented letter costs 6 bytes and an emoji 12: a count of
characters or messages bounds nothing. Every text that reaches a workflow is cut here to a budget of
encoded bytes, with a note saying so, and the workflow keeps its own copies (the transcript window,
the carried state) under budgets whose sum stays well below the limit:

    one user message                        TEXT_BYTES            128 KB
    one model answer                        ANSWER_BYTES          256 KB
    one tool output                         TOOL_OUTPUT_BYTES      64 KB
    one tool call's arguments               TOOL_ARGUMENTS_BYTES   64 KB, a round's calls 256 KB
    earlier thread messages (first turn)    CONTEXT_BYTES         128 KB
    the workflow's transcript window        WINDOW_BYTES          512 KB (the activity input's
                                                                          unsynced tail is part of it)
    finished turns carried to the next run  RECENT_BYTES          192 KB
    a paused turn's finished tool results   CHECKPOINT_BYTES      256 KB
    messages queued across continue-as-new  PENDING_BYTES         256 KB
    ratings of answers (with comments)      feedback.FEEDBACK_BYTES  128 KB
    the first request, kept for the model   PINNED_BYTES           16 KB
    the summary of older turns              SUMMARY_BYTES          32 KB

Pure functions without I/O: the workflow imports this module.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

PAYLOAD_LIMIT = 2 * 1024 * 1024  # Temporal's hard limit on one payload
TEXT_BYTES = 128 * 1024
ANSWER_BYTES = 256 * 1024
TOOL_OUTPUT_BYTES = 64 * 1024
TOOL_ARGUMENTS_BYTES = 64 * 1024
ROUND_ARGUMENTS_BYTES = 256 * 1024
CONTEXT_BYTES = 128 * 1024
WINDOW_BYTES = 512 * 1024
RECENT_BYTES = 192 * 1024
CHECKPOINT_BYTES = 256 * 1024
PENDING_BYTES = 256 * 1024
PINNED_BYTES = 16 * 1024  # the conversation's first request, carried for resyncs
SUMMARY_BYTES = 32 * 1024  # the summary of older turns, carried across continue-as-new
APPROVAL_ARGUMENTS_BYTES = TOOL_ARGUMENTS_BYTES  # whole, for the approver's Show all; cards cut their own
ERROR_BYTES = 4_096
NAME_CHARS = 200  # user ids, user names, message ids: short by nature
MESSAGE_FILES = 50  # file references one message carries (its own files and those of its thread context)
TURN_FILES = 20  # files the tools of one turn hand to the delivery
_FILE_REF_BYTES = 120 + 64  # one encoded BlobRef, its name aside
_STUB_CHARS = 300  # what a message cut to save room keeps of its text
_MESSAGE_OVERHEAD = 120  # field names and punctuation of one encoded ChatMessage


def encoded_len(text: str | None) -> int:
    """Bytes ``text`` takes inside a payload of Temporal's JSON converter (quotes included)."""
    return len(json.dumps(text)) if text else 2


def payload_size(value: Any) -> int:
    """Bytes of ``value`` (a dataclass or plain JSON value) as Temporal's JSON converter encodes it."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return len(json.dumps(value, separators=(",", ":"), default=str))


def clip(text: str, budget: int, what: str = "text") -> str:
    """``text`` if it fits ``budget`` encoded bytes, else its longest prefix that fits with a note."""
    if text is None or len(text) * 12 + 2 <= budget or encoded_len(text) <= budget:
        return text
    note = f"\n[{what} cut to fit: {len(text)} characters in all]"
    room = max(0, budget - encoded_len(note))
    n = min(len(text), room)
    while n > 0:
        size = encoded_len(text[:n])
        if size <= room:
            break
        n = min(n - 1, n * room // size)
    return text[:n] + note


def message_bytes(msg: Any) -> int:
    """Encoded bytes of one ``ChatMessage`` (close estimate, never below the truth by much)."""
    size = _MESSAGE_OVERHEAD + encoded_len(msg.content) + len(msg.tool_call_id or "") + len(msg.name or "")
    for ref in getattr(msg, "attachments", None) or ():
        size += _FILE_REF_BYTES + encoded_len(ref.name) + len(ref.media_type)
    for call in msg.tool_calls:
        size += 60 + len(call.id) + len(call.name) + encoded_len(call.arguments) + encoded_len(call.error)
    return size


def stub(msg: Any) -> Any:
    """A copy of ``msg`` cut to a short stub, keeping its role and tool-call links intact."""
    content = msg.content
    if content and len(content) > 2 * _STUB_CHARS:  # a stub is shorter: cutting one again changes nothing
        content = content[:_STUB_CHARS] + (
            f"\n[cut to save room: {len(msg.content)} characters in all; the full text is no longer kept]")
    calls = [dataclasses.replace(c, arguments="{}") if len(c.arguments) > 2 else c for c in msg.tool_calls]
    if content == msg.content and calls == msg.tool_calls:
        return msg
    if calls != msg.tool_calls and not content:
        content = "[tool call arguments cut to save room]"
    return dataclasses.replace(msg, content=content, tool_calls=calls)


def bound_messages(messages: list[Any], sizes: list[int], budget: int) -> int:
    """Cut the oldest messages to stubs, in place, until the list fits ``budget``; return its size.

    The newest messages stay whole: they matter most to the model. Stubs keep the sequence intact
    (no hole in the transcript store), so at worst the model reads a note where a long text was.
    """
    total = sum(sizes)
    i = 0
    while total > budget and i < len(messages):
        short = stub(messages[i])
        if short is not messages[i]:
            new = message_bytes(short)
            total += new - sizes[i]
            messages[i], sizes[i] = short, new
        i += 1
    return total


def bound_context(messages: list[Any], budget: int = CONTEXT_BYTES) -> list[Any]:
    """The newest earlier-thread messages that fit ``budget``, each cut to ``TEXT_BYTES``, with a note."""
    kept: list[Any] = []
    total = 0
    for msg in reversed(messages):
        if msg.content and encoded_len(msg.content) > TEXT_BYTES:
            msg = dataclasses.replace(msg, content=clip(msg.content, TEXT_BYTES, "message"))
        size = message_bytes(msg)
        if total + size > budget:
            break
        kept.append(msg)
        total += size
    kept.reverse()
    if len(kept) < len(messages):
        note = f"[{len(messages) - len(kept)} earlier thread message(s) left out: too long to pass on]"
        kept.insert(0, type(messages[0])(role="system", content=note))
    return kept


def bound_user_message(msg: Any) -> Any:
    """Cut a ``UserMessage``'s text, thread context and names to their budgets, in place."""
    msg.text = clip(msg.text or "", TEXT_BYTES, "message")
    if msg.context and sum(message_bytes(m) for m in msg.context) > CONTEXT_BYTES:
        msg.context = bound_context(msg.context)
    if msg.user_name and len(msg.user_name) > NAME_CHARS:
        msg.user_name = msg.user_name[:NAME_CHARS]
    if msg.user and len(msg.user) > NAME_CHARS:
        msg.user = msg.user[:NAME_CHARS]
    msg.attachments = bound_refs(getattr(msg, "attachments", None) or [], MESSAGE_FILES)
    return msg


def bound_refs(refs: list[Any], count: int) -> list[Any]:
    """At most ``count`` file references, their names and types cut to ``NAME_CHARS``."""
    return [dataclasses.replace(r, name=r.name[:NAME_CHARS], media_type=r.media_type[:NAME_CHARS])
            if len(r.name) > NAME_CHARS or len(r.media_type) > NAME_CHARS else r for r in refs[:count]]


def bound_statuses(statuses: list[Any], budget: int = RECENT_BYTES) -> list[Any]:
    """Copies of finished turns that fit ``budget`` together: the newest keep their text longest."""
    out: list[Any] = []
    left = budget
    for st in reversed(statuses):
        approvals = [dataclasses.replace(a, arguments=clip(a.arguments, 200, "arguments")) for a in st.approvals]
        st = dataclasses.replace(st, approvals=approvals, error=clip(st.error, ERROR_BYTES, "error"))
        rest = payload_size(dataclasses.replace(st, text=None))
        if st.text and encoded_len(st.text) + rest > left:
            st = dataclasses.replace(st, text=clip(st.text, max(0, left - rest - 200), "answer"))
        size = payload_size(st)
        if size > left:
            break
        out.append(st)
        left -= size
    out.reverse()
    return out


def refusal(msg: Any) -> str | None:
    """Why a user message cannot be taken as it is (its id and delivery target are kept, not cut)."""
    if len(msg.id) > NAME_CHARS:
        return f"message id is {len(msg.id)} characters long; at most {NAME_CHARS} are accepted"
    if msg.deliver_to is not None and payload_size(msg.deliver_to) > ERROR_BYTES:
        return f"the delivery target is larger than {ERROR_BYTES} bytes"
    return None


def bound_results(results: list[Any]) -> list[Any]:
    """A paused turn's finished tool results, cut (oldest first) to fit the next run's input."""
    total = sum(encoded_len(r.output) for r in results)
    out = []
    for r in results:
        if total > CHECKPOINT_BYTES:
            short = clip(r.output, 1_000, "tool output")
            total -= encoded_len(r.output) - encoded_len(short)
            r = dataclasses.replace(r, output=short)
        out.append(r)
    return out
