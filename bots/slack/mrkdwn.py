"""Markdown (as models write it) to Slack mrkdwn. Pure, linear in the text, and safe for any string.

Slack's mrkdwn differs from markdown: *bold*, _italic_, ~strike~, <url|text> links, no headings and
no language tags on code fences; &, < and > must be escaped. Code (fenced and inline) is kept as is,
apart from escaping, so a model's code samples stay exact.

Safety: in Slack, ``<`` starts markup (``<!channel>``, ``<@U123>``, ``<#C1>``, ``<!subteam^S1>``), so
every ``<`` of the model's text is escaped, and the only ``<`` in the output opens a link this module
builds itself, whose URL has ``<``, ``>`` and ``|`` percent-encoded and ``&`` escaped.

Speed: each line is read once, left to right. Emphasis is paired with at most one pending opener per
kind (the first opener meets the nearest closer, as the lazy regexes this replaces did), and every
forward search (the ``]`` of a link, the end of its URL, a closing backtick run) is remembered, so
no position is scanned twice however hostile the text: 40,000 characters of ``**a `` take
milliseconds, not seconds.
"""

from __future__ import annotations

import re

from bots.core.sanitize import clean_text

__all__ = ["escape", "safe_url", "to_mrkdwn"]

_BULLET = re.compile(r"[ \t]*[-*+][ \t]+")
_SPECIAL = re.compile(r"[`*_~\[<!]")
_URL_END = re.compile(r"[)\s]")
_AUTOLINK = re.compile(r"<(https?://[^\s<>]+)>")
_SCHEME = re.compile(r"https?://")
_URL_UNSAFE = str.maketrans({"<": "%3C", ">": "%3E", "|": "%7C", "&": "&amp;", " ": "%20", '"': "%22",
                             "`": "%60"})


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def safe_url(url: str) -> str:
    """A URL that cannot end a Slack link early: ``<``, ``>``, ``|`` percent-encoded, ``&`` escaped."""
    return clean_text(url).translate(_URL_UNSAFE)


def _heading(line: str) -> str | None:
    """The title of an ATX heading (``# Title #``), or None."""
    s = line.lstrip(" ")
    if len(line) - len(s) > 3 or not s.startswith("#"):
        return None
    level = len(s) - len(s.lstrip("#"))
    rest = s[level:]
    if level > 6 or not rest[:1].isspace():
        return None
    title = rest.strip()
    closing = title.rstrip("#")
    if closing != title and (not closing or closing[-1].isspace()):
        title = closing.rstrip()
    return title or None


class _Inline:
    """One line's inline markup to mrkdwn (see the module docstring for why it is a scanner)."""

    def __init__(self, line: str) -> None:
        self.line = line
        self.out: list[str] = []
        self.pending: dict[str, tuple[int, int]] = {}  # kind -> (index in out, end of the opener in line)
        self._close_at = -2  # the next "]" at or after a position (-1: none left), remembered
        self._url_from = self._url_to = -1  # last URL scan: from there, the first ")" or space is at _url_to
        self._ticks: dict[int, list[int]] | None = None  # backtick run length -> starts, in order
        self._tick_next: dict[int, int] = {}

    def render(self) -> str:
        line = self.line
        i = text_from = 0
        while True:
            m = _SPECIAL.search(line, i)
            if m is None:
                break
            i = m.start()
            if text_from < i:
                self.out.append(escape(line[text_from:i]))
                text_from = i
            end = self._token(i)
            if end is None:  # not markup: the character stays in the next piece of plain text
                i += 1
                continue
            text_from = i = end
        if text_from < len(line):
            self.out.append(escape(line[text_from:]))
        return "".join(self.out)

    def _emit(self, piece: str) -> None:
        self.out.append(piece)

    def _token(self, i: int) -> int | None:
        """Render the markup starting at ``i`` into ``out``; return where it ends (None: not markup)."""
        c = self.line[i]
        if c == "`":
            return self._code(i)
        if c == "[":
            return self._link(i)
        if c == "!":
            return self._link(i + 1) if self.line.startswith("[", i + 1) else None
        if c == "<":
            m = _AUTOLINK.match(self.line, i)
            if m is None:
                return None
            self._emit(f"<{safe_url(m.group(1))}>")
            return m.end()
        return self._delimiters(i)

    def _code(self, i: int) -> int | None:
        line = self.line
        j = i
        while j < len(line) and line[j] == "`":
            j += 1
        length = j - i
        if self._ticks is None:
            self._ticks = {}
            for m in re.finditer(r"`+", line):
                self._ticks.setdefault(m.end() - m.start(), []).append(m.start())
        starts = self._ticks.get(length, [])
        k = self._tick_next.get(length, 0)
        while k < len(starts) and starts[k] < j:
            k += 1
        self._tick_next[length] = k
        if k == len(starts):
            self._emit(line[i:j])  # no closing run of the same length: literal backticks
            return j
        close = starts[k]
        self._tick_next[length] = k + 1
        self._emit(escape(line[i:close + length]))
        return close + length

    def _link(self, bracket: int) -> int | None:
        """``[label](http…)`` (or an image, whose ``!`` is dropped) from the ``[`` at ``bracket``."""
        line = self.line
        if self._close_at != -1 and self._close_at <= bracket:
            self._close_at = line.find("]", bracket + 1)
        close = self._close_at
        if close == -1 or close == bracket + 1:
            return None
        if not line.startswith("(", close + 1):
            return None
        url_start = close + 2
        if not _SCHEME.match(line, url_start):
            return None
        if not (self._url_from <= url_start < self._url_to):
            m = _URL_END.search(line, url_start)
            self._url_from, self._url_to = url_start, (m.start() if m else len(line))
        url_end = self._url_to
        if url_end >= len(line) or line[url_end] != ")":
            return None
        label = line[bracket + 1:close]
        self._emit(f"<{safe_url(line[url_start:url_end])}|{escape(label)}>")
        return url_end + 1

    def _delimiters(self, i: int) -> int | None:
        line = self.line
        c = line[i]
        if c == "!":
            return None
        j = i
        while j < len(line) and line[j] == c:
            j += 1
        before = line[i - 1] if i > 0 else " "
        after = line[j] if j < len(line) else " "
        can_open, can_close = not after.isspace(), not before.isspace()
        run = j - i
        if c == "*" and run == 3:
            # ***x*** is bold and italic: open bold then italic, close italic then bold.
            if can_open and not can_close:
                self._pair("**", "*", i, i + 2, True, False)
                self._pair("*", "_", i + 2, j, not before.isalnum(), False)
            elif can_close and not can_open:
                self._pair("*", "_", i, i + 1, False, not after.isalnum())
                self._pair("**", "*", i + 1, j, False, True)
            else:
                self._emit(line[i:j])
            return j
        if c == "*" and run == 1:
            self._pair("*", "_", i, j, can_open and not _word(before), can_close and not _word(after))
        elif c == "*" and run == 2:
            self._pair("**", "*", i, j, can_open, can_close)
        elif c == "_" and run == 2:
            self._pair("__", "*", i, j, can_open and not _word(before), can_close and not _word(after))
        elif c == "~" and run == 2:
            self._pair("~~", "~", i, j, can_open, can_close)
        else:
            self._emit(line[i:j])
        return j

    def _pair(self, kind: str, mark: str, i: int, j: int, can_open: bool, can_close: bool) -> None:
        opener = self.pending.get(kind)
        if can_close and opener is not None and opener[1] < i:
            del self.pending[kind]
            self.out[opener[0]] = mark
            self._emit(mark)
        elif can_open and opener is None:
            self._emit(self.line[i:j])
            self.pending[kind] = (len(self.out) - 1, j)
        else:
            self._emit(self.line[i:j])


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _inline(line: str) -> str:
    return _Inline(line).render()


def to_mrkdwn(markdown: str) -> str:
    lines = clean_text(markdown).split("\n")
    out: list[str] = []
    in_code = False
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith("```") and (in_code or "```" not in stripped[3:]):
            # Slack shows a language tag as code text: drop it.
            out.append(line[: len(line) - len(stripped)] + "```")
            in_code = not in_code
            continue
        if in_code:
            out.append(escape(line))
            continue
        quote = ""
        if line.startswith(">"):
            quote, line = "> ", line[1:].lstrip()
        title = _heading(line)
        if title is not None:
            out.append(f"{quote}*{_inline(title).strip('*')}*")
            continue
        bullet = _BULLET.match(line)
        if bullet:
            indent = bullet.group()[: len(bullet.group()) - len(bullet.group().lstrip(" \t"))]
            out.append(f"{quote}{indent}• {_inline(line[bullet.end():])}")
            continue
        out.append(quote + _inline(line))
    return "\n".join(out)
