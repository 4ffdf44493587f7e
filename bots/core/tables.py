"""Markdown tables for platforms that do not render them (Discord, Slack's mrkdwn).

A GitHub-style table (a header row, a ``|---|:---:|`` separator row, body rows) becomes a fenced code
block with the columns padded to line up, which every chat client shows in a monospace font. Text
inside existing code fences is left alone. Pure functions: safe to call on a half-streamed answer
(a table whose separator row has not arrived yet stays as it is until it does).
"""

from __future__ import annotations

import re

__all__ = ["tables_to_code_blocks"]

_SEPARATOR_CELL = re.compile(r":?-{2,}:?")
_PIPE = re.compile(r"(?<!\\)\|")
_INLINE_MARKS = re.compile(r"\*\*|__|`")
_MAX_WIDTH = 40  # a wider cell is cut, so one long cell does not push every row off screen
_MAX_COLUMNS = 20  # cells past this are dropped: padding every row to thousands of columns is no table


def _cells(line: str) -> list[str]:
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|") and not s.endswith("\\|"):
        s = s[:-1]
    cells = _PIPE.split(s)
    return [c.strip().replace("\\|", "|") for c in cells]


def _is_separator(line: str) -> bool:
    """A ``|---|:--:|`` row. Plain string work: the regex it replaces backtracked on long blank runs."""
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|"):
        s = s[:-1]
    return all(_SEPARATOR_CELL.fullmatch(c.strip()) for c in s.split("|"))


def _is_row(line: str) -> bool:
    return "|" in line and line.strip() != ""


def _render(rows: list[list[str]], aligns: list[str]) -> list[str]:
    ncols = min(max(len(r) for r in rows), _MAX_COLUMNS)
    rows = [r[:ncols] + [""] * (ncols - len(r)) for r in rows]
    rows = [[_strip_inline(c)[:_MAX_WIDTH] for c in r] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(ncols)]
    aligns = aligns + ["l"] * (ncols - len(aligns))

    def fmt(row: list[str]) -> str:
        out = []
        for cell, width, align in zip(row, widths, aligns):
            out.append(cell.rjust(width) if align == "r" else cell.center(width) if align == "c" else cell.ljust(width))
        return " | ".join(out).rstrip()

    lines = [fmt(rows[0]), "-+-".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows[1:]]
    return lines


def _strip_inline(cell: str) -> str:
    # Bold and inline code markers mean nothing inside a code block; drop them so columns line up.
    if "*" not in cell and "_" not in cell and "`" not in cell:
        return cell
    return _INLINE_MARKS.sub("", cell)


def _aligns(separator: str) -> list[str]:
    out = []
    for cell in _cells(separator):
        left, right = cell.startswith(":"), cell.endswith(":")
        out.append("c" if left and right else "r" if right else "l")
    return out


def tables_to_code_blocks(text: str) -> str:
    """Replace every markdown table outside code fences by an aligned code block."""
    if "|" not in text:
        return text
    lines = text.split("\n")
    out: list[str] = []
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("```"):
            in_fence = not in_fence
            out.append(line)
            i += 1
            continue
        if (
            not in_fence and _is_row(line) and i + 1 < len(lines) and _is_separator(lines[i + 1])
            and "|" in lines[i + 1] + line.strip()[1:]
        ):
            rows = [_cells(line)]
            aligns = _aligns(lines[i + 1])
            j = i + 2
            while j < len(lines) and _is_row(lines[j]) and not lines[j].strip().startswith("```"):
                rows.append(_cells(lines[j]))
                j += 1
            out.append("```")
            out.extend(_render(rows, aligns))
            out.append("```")
            i = j
            continue
        out.append(line)
        i += 1
    return "\n".join(out)
