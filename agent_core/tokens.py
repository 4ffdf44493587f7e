"""How many tokens a text takes, and how many a model's context holds. Pure, no I/O.

Counting is an estimate, not a tokenizer: the exact BPE tables (tiktoken's) are downloaded at run time,
which fails on machines without internet, and no single table fits every model a deployment may point
at (OpenAI's o200k and cl100k, Llama's, Claude's). The estimate follows how BPE tokenizers cut text
(words, runs of up to three digits, punctuation, whitespace) and errs high: against cl100k it counts
1.07 to 1.35 times the true number on English, Python, JSON, logs, digits, German and Chinese (``SAFETY``
included), 1.8 times on Russian; bytes / 4 would count 0.53 to 1.17 times, too few on digits, JSON and
Chinese. A budget reserves room for the answer on top.

Context windows come from a small table of model name prefixes; an unknown model gets
``UNKNOWN_MODEL_TOKENS`` (small local servers such as Ollama default to a few thousand tokens), and a
known one at most ``DEFAULT_CAP`` (cost and latency grow with every request's size; the summary of
older turns keeps what matters). ``DURABOT_CONTEXT_TOKENS`` overrides both.
"""

from __future__ import annotations

import math
import re
from typing import Any

SAFETY = 1.1
MESSAGE_OVERHEAD = 4  # role and separators of one chat message
PART_TOKENS = 1_000  # a content part that is not text (an image): what a detailed image costs at most
UNKNOWN_MODEL_TOKENS = 8_000
DEFAULT_CAP = 128_000
MIN_BUDGET = 1_000

# Longest prefix wins. Figures are the models' documented input windows.
_WINDOWS: dict[str, int] = {
    "gpt-5": 272_000,
    "gpt-4.1": 1_047_576,
    "gpt-4o": 128_000,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "o1-mini": 128_000,
    "o1": 200_000,
    "o3": 200_000,
    "o4-mini": 200_000,
    "chatgpt-4o": 128_000,
    "claude": 200_000,
    "gemini": 1_000_000,
    "llama3.1": 128_000,
    "llama3.2": 128_000,
    "llama3.3": 128_000,
    "llama-3.1": 128_000,
    "llama-3.2": 128_000,
    "llama-3.3": 128_000,
    "llama3": 8_192,
    "llama-3": 8_192,
    "llama2": 4_096,
    "mistral-large": 128_000,
    "mistral-small": 32_000,
    "mistral-nemo": 128_000,
    "mistral": 32_000,
    "mixtral": 32_000,
    "qwen2.5": 32_768,
    "qwen3": 32_768,
    "deepseek": 64_000,
    "gemma2": 8_192,
    "gemma3": 128_000,
    "phi3": 4_096,
    "phi4": 16_384,
}

# Pieces the way BPE pre-tokenizers cut text: contractions, words with their leading space, up to
# three digits, punctuation runs, whitespace.
_PIECE = re.compile(r"'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d{1,3}| ?[^\s\w]+[\r\n]*|\s+")


# Estimates already made, by the text's length and hash: a model round re-reads its conversation's
# recent messages and counts them about three times (selection, then the request as sent), so most
# texts were counted in an earlier round. Bounded; a hash collision costs one text's estimate, never
# more than a wrong guess of the heuristic itself would.
_SEEN: dict[tuple[int, int], int] = {}
_SEEN_MAX = 16_384
_SHORT = 32  # characters; below this counting is cheaper than a look-up


def estimate(text: str | None) -> int:
    """Tokens ``text`` takes, estimated on the high side."""
    if not text:
        return 0
    if len(text) < _SHORT:
        return _estimate(text)
    key = (len(text), hash(text))
    n = _SEEN.get(key)
    if n is None:
        if len(_SEEN) >= _SEEN_MAX:
            del _SEEN[next(iter(_SEEN))]  # the oldest first
        n = _SEEN[key] = _estimate(text)
    return n


def _estimate(text: str) -> int:
    n = 0
    for match in _PIECE.finditer(text):
        piece = match.group()
        size = len(piece.encode())
        if size != len(piece):  # non-ASCII: CJK is about a token per character, accents split words
            n += math.ceil(size / 2.5)
        elif piece.isspace():
            n += 1
        elif piece.strip()[:1].isalpha():
            n += 1 + len(piece) // 7  # long words are two or three tokens
        else:
            n += 1 + len(piece) // 4
    return math.ceil(n * SAFETY)


def message_tokens(msg: Any) -> int:
    """Tokens one ``ChatMessage`` takes in a request (its text, tool calls and names)."""
    n = MESSAGE_OVERHEAD + estimate(msg.content) + estimate(msg.name) + estimate(msg.tool_call_id)
    for call in msg.tool_calls:
        n += MESSAGE_OVERHEAD + estimate(call.name) + estimate(call.arguments) + estimate(call.id)
    return n


def model_window(model: str) -> int:
    """The context window of a model by its name (``openai:gpt-4o``, ``llama3.1:8b``, ``gpt-4o-mini``)."""
    name = model.split(":", 1)[1] if model.startswith("openai:") else model
    name = name.rsplit("/", 1)[-1].lower()  # provider/model names (OpenRouter, LiteLLM)
    best = ""
    for prefix in _WINDOWS:
        if name.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return min(_WINDOWS[best], DEFAULT_CAP) if best else UNKNOWN_MODEL_TOKENS


def answer_reserve(window: int) -> int:
    """Tokens kept free for the model's answer."""
    return min(window // 8, 8_192)


def input_budget(window: int) -> int:
    """Tokens a request may take in a context of ``window`` tokens."""
    return max(MIN_BUDGET, window - answer_reserve(window))


def request_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> int:
    """Tokens of a chat completions request as sent (``messages`` in the API's form), estimated the
    way ``message_tokens`` counts the transcript, so a selection and the request it becomes agree."""
    import json

    n = estimate(json.dumps(tools)) if tools else 0
    for m in messages:
        n += MESSAGE_OVERHEAD + estimate(m.get("name")) + estimate(m.get("tool_call_id"))
        content = m.get("content")
        if isinstance(content, str):
            n += estimate(content)
        elif isinstance(content, list):  # content parts: text counts as text, anything else as a block
            for part in content:
                text = part.get("text") if isinstance(part, dict) else None
                n += estimate(text) if isinstance(text, str) else PART_TOKENS
        for call in m.get("tool_calls") or []:
            fn = call.get("function") or {}
            n += MESSAGE_OVERHEAD + estimate(fn.get("name")) + estimate(fn.get("arguments")) + estimate(call.get("id"))
    return n
