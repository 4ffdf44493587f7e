"""Markdown (as models write it) to Slack mrkdwn. Pure.

Slack's mrkdwn differs from markdown: *bold*, _italic_, ~strike~, <url|text> links, no headings and
no language tags on code fences; &, < and > must be escaped. Code (fenced and inline) is kept as is,
apart from escaping, so a model's code samples stay exact.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^(\s*)```.*$")
_INLINE_CODE = re.compile(r"(`[^`\n]+`)")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC_STAR = re.compile(r"(?<![\*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+")
_BOLD_MARK = "\x00B\x00"  # stands for a bold asterisk while italics are converted


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _inline(text: str) -> str:
    pieces = _INLINE_CODE.split(text)
    out = []
    for i, piece in enumerate(pieces):
        if i % 2:  # inline code
            out.append(escape(piece))
            continue
        links: list[str] = []

        def keep_link(m: re.Match[str]) -> str:
            links.append(f"<{m.group(2)}|{escape(m.group(1))}>")
            return f"\x00L{len(links) - 1}\x00"

        piece = _LINK.sub(keep_link, piece)
        piece = escape(piece)
        piece = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(2)}{_BOLD_MARK}", piece)
        piece = _ITALIC_STAR.sub(r"_\1_", piece)
        piece = piece.replace(_BOLD_MARK, "*")
        piece = _STRIKE.sub(r"~\1~", piece)
        piece = re.sub(r"\x00L(\d+)\x00", lambda m: links[int(m.group(1))], piece)
        out.append(piece)
    return "".join(out)


def to_mrkdwn(markdown: str) -> str:
    lines = markdown.split("\n")
    out: list[str] = []
    in_code = False
    for line in lines:
        fence = _FENCE.match(line)
        if fence:
            # Slack shows a language tag as code text: drop it.
            out.append(f"{fence.group(1)}```")
            in_code = not in_code
            continue
        if in_code:
            out.append(escape(line))
            continue
        quote = ""
        if line.startswith(">"):
            quote, line = "> ", line[1:].lstrip()
        heading = _HEADING.match(line)
        if heading:
            out.append(f"{quote}*{_inline(heading.group(1)).strip('*')}*")
            continue
        line = _BULLET.sub(lambda m: f"{m.group(1)}• ", line)
        out.append(quote + _inline(line))
    return "\n".join(out)
