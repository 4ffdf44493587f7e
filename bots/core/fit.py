"""Shortening text to a platform limit measured *after* rendering. Pure.

Escaping and fence guards make rendered text longer than its source (Slack's ``&`` becomes ``&amp;``,
five characters for one), so a cut made before rendering can still break the limit, and the platform
then refuses the whole message. These helpers cut the source so that its rendering fits.
"""

from __future__ import annotations

import json
from collections.abc import Callable


def pretty_arguments(arguments: str, indent: int = 2) -> str:
    """Tool arguments as indented JSON, or as given when they are not JSON."""
    try:
        return json.dumps(json.loads(arguments), ensure_ascii=False, indent=indent)
    except (ValueError, TypeError):
        return arguments or ""


def fit(text: str, budget: int, render: Callable[[str], str]) -> tuple[str, int]:
    """(``render`` of the longest prefix of ``text`` that renders within ``budget`` characters, how many
    characters of ``text`` were left out). ``render`` must not shrink when its input grows."""
    whole = render(text)
    if len(whole) <= budget:
        return whole, 0
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits
        mid = (lo + hi + 1) // 2
        if len(render(text[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return render(text[:lo]), len(text) - lo


def chunks(text: str, budget: int, render: Callable[[str], str], limit: int) -> tuple[list[str], int]:
    """``text`` rendered in at most ``limit`` pieces of at most ``budget`` characters each, cut at line
    ends where one is near; with the number of characters that did not fit in ``limit`` pieces."""
    out: list[str] = []
    rest = text
    while rest and len(out) < limit:
        shown, left = fit(rest, budget, render)
        taken = len(rest) - left
        if left and taken > 0:
            nl = rest.rfind("\n", max(0, taken - 400), taken)
            if nl > 0:
                taken = nl + 1
                shown = render(rest[:taken])
        if taken == 0:
            break  # nothing fits at all (a budget smaller than the rendering's frame)
        out.append(shown)
        rest = rest[taken:]
    return out, len(rest)
