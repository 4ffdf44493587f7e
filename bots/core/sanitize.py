"""Characters a model may write that no chat message should carry.

A model's text can hold anything a ``str`` can: NUL and other control characters, lone surrogates
(which cannot be encoded as UTF-8, so the HTTP layer raises and the delivery is retried forever),
Unicode line separators, and bidirectional overrides that make text display in another order than it
reads. ``clean_text`` maps each to something harmless in one linear pass, so every renderer can take
any string.
"""

from __future__ import annotations

import re

__all__ = ["clean_text"]

# C0 except tab and newline, DEL, C1, line/paragraph separators, bidi embeddings/overrides/isolates,
# and surrogates (always lone in a str: a valid pair is one code point).
_UNWANTED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_REPLACE = {"\r": "\n", "\x0b": "\n", "\x0c": "\n", "\u2028": "\n", "\u2029": "\n\n"}


def _one(m: re.Match[str]) -> str:
    ch = m.group()
    if "\ud800" <= ch <= "\udfff":
        return "\ufffd"
    return _REPLACE.get(ch, "")


def clean_text(text: str) -> str:
    """``text`` without control characters, lone surrogates or bidi overrides (never raises on a str)."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if _UNWANTED.search(text) is None:
        return text
    return _UNWANTED.sub(_one, text.replace("\r\n", "\n"))
