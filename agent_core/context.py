"""What a model round sends within a token budget, and where a summary of older turns ends. Pure.

A request holds, in order: the system prompt (and the tools' schemas), the pinned first user request,
the summary of the turns before the recent ones, a note when messages had to be left out, and the
most recent messages that fit, whole where they can be. A long old message (a pasted log, a file's
contents, a tool's large output) shrinks to its head and a note before anything newer is left out;
``shrink`` is the one place that decides what of a message can be dropped.

The workflow asks for a new summary when a request passes ``SUMMARISE_AT`` of the budget or had to
leave unsummarised messages out; the summary then covers everything but the newest ``KEEP_RECENT``
share of the budget, cut at a turn's first message.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .tokens import estimate, message_tokens
from .types import ChatMessage

SUMMARISE_AT = 0.75  # share of the budget a request may take before older turns are summarised
KEEP_RECENT = 0.4  # share of the budget the newest, unsummarised turns keep after a summary
SUMMARY_TOKENS = 2_000  # a summary's length at most (and at most an eighth of the budget)
HEAD_CHARS = 400  # what a shrunk message keeps of its text
READ_LIMIT = 900  # newest transcript messages a round reads from the store (stores keep 1,000)

SUMMARY_INSTRUCTIONS = (
    "You keep the memory of a long chat conversation between users and an assistant. Write a concise "
    "summary of the conversation below, merged with the earlier summary if there is one. Keep every "
    "fact, name, number, decision, result of a tool, and open request the assistant may need later; "
    "drop greetings and repetition. Write at most {words} words, as plain notes. Output only the summary."
)
SUMMARY_HEADING = "Summary of the earlier conversation (older messages are not shown):\n"
PINNED_HEADING = "[The conversation's first request, kept in full:]\n"


@dataclass
class Selection:
    messages: list[ChatMessage]  # what goes to the model after the system prompt
    tokens: int  # estimated tokens of the whole request (system prompt and tools included)
    dropped: int  # messages of the given range left out: the workflow summarises before the next round
    recent: int = 0  # tokens of the recent messages (the part a summary can take in)

    def full(self, budget: int) -> bool:
        """The recent messages fill their share of what the budget leaves them: summarise."""
        return self.dropped > 0 or self.recent > SUMMARISE_AT * (budget - (self.tokens - self.recent))


def summary_tokens(budget: int) -> int:
    return max(200, min(SUMMARY_TOKENS, budget // 8))


def shrink(msg: ChatMessage) -> ChatMessage:
    """``msg`` without what can be dropped: text past ``HEAD_CHARS``, long tool-call arguments.
    The transcript store keeps the whole message; only this request sends less."""
    content = msg.content
    if content and len(content) > 2 * HEAD_CHARS:
        content = (content[:HEAD_CHARS] + f"\n[{len(msg.content) - HEAD_CHARS} more characters not shown "
                   "to fit the model's context]")
    calls = [dataclasses.replace(c, arguments="{}") if len(c.arguments) > HEAD_CHARS else c for c in msg.tool_calls]
    if content == msg.content and calls == msg.tool_calls:
        return msg
    return dataclasses.replace(msg, content=content, tool_calls=calls)


def clip_to(msg: ChatMessage, room: int) -> ChatMessage:
    """``msg`` with its text cut to fit ``room`` tokens, for a newest message that does not fit whole."""
    small = shrink(msg)
    text = msg.content or ""
    n = min(len(text), max(HEAD_CHARS, room * 2))
    while n > HEAD_CHARS:
        cut = dataclasses.replace(small, content=text[:n] + (
            f"\n[{len(text) - n} more characters not shown to fit the model's context]"))
        used = message_tokens(cut)
        if used <= room:
            return cut
        n = min(n - 1, n * room // used)
    return small


def select(
    messages: list[ChatMessage], budget: int, *, fixed: int = 0, summary: str | None = None,
    pinned: ChatMessage | None = None, pinned_index: int | None = None, char_cap: int = 0,
) -> Selection:
    """The newest ``messages`` that fit ``budget`` tokens beside ``fixed`` (system prompt, tools), the
    ``summary`` and the ``pinned`` first request (``pinned_index``: its place in ``messages``, if there).
    ``char_cap`` > 0 also bounds the characters of the messages sent."""
    used = fixed
    head: list[ChatMessage] = []
    if summary:
        head.append(ChatMessage(role="system", content=SUMMARY_HEADING + summary))
        used += message_tokens(head[-1])
    pin = apart = None  # the first request, and how it reads when sent apart from its place
    pin_tokens = pin_chars = 0  # the room set aside for it
    if pinned is not None:
        pin = pinned if message_tokens(pinned) <= budget // 4 else shrink(pinned)
        apart = dataclasses.replace(pin, content=PINNED_HEADING + (pin.content or ""))
        pin_tokens, pin_chars = message_tokens(apart), len(apart.content or "")
    chars = 0
    taken: list[ChatMessage] = []
    for i in range(len(messages) - 1, -1, -1):
        msg, own = messages[i], i == pinned_index and pin is not None
        if own:  # reached in order: sent in its place like any other, its room no longer set aside
            pin_tokens, pin_chars = 0, 0
        choice = None
        # The newest message is cut to the room there is; older ones shrink to their head.
        for candidate in (msg, shrink(msg) if taken else clip_to(msg, budget - used - pin_tokens)):
            t, c = message_tokens(candidate), len(candidate.content or "")
            if used + t + pin_tokens <= budget and (not char_cap or chars + c + pin_chars <= char_cap):
                choice = candidate
                break
        if choice is None and not taken:  # the newest message goes whatever it costs
            choice = shrink(msg)
        if choice is None:
            break
        taken.append(choice)
        used, chars = used + message_tokens(choice), chars + len(choice.content or "")
        if own:
            pin = None
    taken.reverse()
    while len(taken) > 1 and taken[0].role == "tool":  # a tool result without its call is refused
        used -= message_tokens(taken.pop(0))
    dropped = len(messages) - len(taken) - (1 if pinned_index is not None and pin is not None else 0)
    out = list(head)
    if dropped > 0:
        note = ChatMessage(role="system", content=(
            f"[{dropped} earlier message(s) of this conversation are not shown to fit the model's context"
            f"{'; the summary above covers what came before them' if summary else ''}]"))
        out.append(note)
        used += message_tokens(note)
    if pin is not None and apart is not None:
        out.append(apart)
        used += pin_tokens
    recent = sum(message_tokens(m) for m in taken)
    return Selection(messages=out + taken, tokens=used, dropped=max(0, dropped), recent=recent)


def summary_cut(messages: list[ChatMessage], budget: int) -> int:
    """How many of ``messages`` (the unsummarised part, oldest first) a new summary takes in: all but
    the newest that fit ``KEEP_RECENT`` of ``budget``, starting the kept part at a user message. 0:
    nothing to summarise (one turn takes it all)."""
    keep = int(budget * KEEP_RECENT)
    total, i = 0, len(messages)
    while i > 0 and total + message_tokens(messages[i - 1]) <= keep:
        i -= 1
        total += message_tokens(messages[i])
    starts = [j for j, m in enumerate(messages) if m.role == "user"]
    later = [j for j in starts if j >= i]
    if later:
        return later[0]
    earlier = [j for j in starts if j < i]
    return earlier[-1] if earlier else 0  # one long turn: keep it whole, summarise what came before


def summary_prompt(previous: str | None, messages: list[ChatMessage], budget: int) -> list[dict[str, str]]:
    """The request that summarises ``messages`` (merged with ``previous``) within ``budget`` tokens."""
    words = summary_tokens(budget) * 3 // 4
    room = max(1_000, (budget - summary_tokens(budget) - estimate(previous) - 300) * 3)  # characters
    per_message = max(200, room // max(1, len(messages)))
    lines = []
    for m in messages:
        text = m.content or ""
        if len(text) > per_message:
            text = text[:per_message] + f" [...{len(m.content or '') - per_message} more characters]"
        if m.role == "user":
            lines.append(f"User{f' ({m.name})' if m.name else ''}: {text}")
        elif m.role == "assistant":
            if text:
                lines.append(f"Assistant: {text}")
            for c in m.tool_calls:
                lines.append(f"Assistant called {c.name}({c.arguments[:per_message]})")
        elif m.role == "tool":
            lines.append(f"Tool {m.name or ''} returned: {text}")
        else:
            lines.append(f"Note: {text}")
    body = "\n".join(lines)
    if len(body) > room:
        body = body[-room:]
    room_tokens = max(500, budget - summary_tokens(budget) - estimate(previous) - 300)
    while estimate(body) > room_tokens and len(body) > 1_000:  # dense text (digits, JSON): less of it
        body = body[len(body) // 4:]
    user = (f"Earlier summary:\n{previous}\n\n" if previous else "") + f"Conversation to summarise:\n{body}"
    return [{"role": "system", "content": SUMMARY_INSTRUCTIONS.format(words=words)},
            {"role": "user", "content": user}]
