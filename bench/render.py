"""Rendering cost of hostile model text: Slack mrkdwn, Slack live edits and answer parts, Discord
parts, tables and splits, on inputs that made the old regexes quadratic.

For every input it prints the best of a few runs at size N and at 4N, the growth factor between them
(about 4 when linear, about 16 when quadratic) and the ratio to a linear baseline: escaping the same
text with three ``str.replace`` calls, the least any renderer must do. The old regex renderer took
5.8 s for 40,000 characters of ``**a `` (growth 16); a Slack live edit is bounded, so its growth is 1.
Target: every growth factor under 6 and every render of 40,000 characters under 50 ms.

    python bench/render.py [--size 40000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bots.core.split import split_message  # noqa: E402
from bots.core.tables import tables_to_code_blocks  # noqa: E402
from bots.discord.render import reply_parts  # noqa: E402
from bots.slack.mrkdwn import escape, to_mrkdwn  # noqa: E402
from bots.slack.render import _live_body, answer_parts, live_text  # noqa: E402


def repeat(unit: str) -> Callable[[int], str]:
    return lambda n: (unit * (n // len(unit) + 1))[:n]


def table(n: int) -> str:
    rows = ["| name | value | note |", "|---|:---:|---:|"]
    i = 0
    while sum(map(len, rows)) < n:
        rows.append(f"| **row{i}** | `{i * 7}` | some note {i} |")
        i += 1
    return "\n".join(rows)[:n]


def wide_table(n: int) -> str:
    header = "|" + "|".join(f"c{i}" for i in range(n // 8)) + "|"
    return header + "\n|" + "---|" * (n // 8) + "\n" + "|x|\n" * (n // 8)


def prose(n: int) -> str:
    para = ("Durable execution means the work survives crashes: **completed** tool calls are not run again, "
            "`approvals` already given are not asked again, and [the answer](https://example.com/docs) still "
            "reaches the thread.\n\n- one point\n- another point\n\n```python\nprint('x < y')\n```\n\n")
    return (para * (n // len(para) + 1))[:n]


INPUTS: list[tuple[str, Callable[[int], str]]] = [
    ("**a ", repeat("**a ")),
    ("~~a ", repeat("~~a ")),
    ("[a](", repeat("[a](")),
    ("[", repeat("[")),
    ("[a](http://x", repeat("[a](http://x")),
    ("`a ", repeat("`a ")),
    ("``a `", repeat("``a `")),
    ("_a ", repeat("_a ")),
    ("__a ", repeat("__a ")),
    ("*a ", repeat("*a ")),
    ("<http://", repeat("<http://")),
    ("# " + "spaces", lambda n: "# " + " " * (n - 3) + "x"),
    ("table rows", table),
    ("wide table", wide_table),
    ("separator spaces", lambda n: "a|b\n" + " " * (n - 5) + "x"),
]

RENDERERS: list[tuple[str, Callable[[str], object]]] = [
    ("to_mrkdwn", to_mrkdwn),
    ("slack live", lambda t: (_live_body.cache_clear(), live_text(t, ["tool"], None))),  # uncached cost
    ("slack parts", lambda t: answer_parts(t, [])),
    ("discord parts", lambda t: reply_parts(t, partial=True)),
    ("tables", tables_to_code_blocks),
    ("split 2000", lambda t: split_message(t, 2000)),
]


def best(fn: Callable[[str], object], text: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.size
    cases = INPUTS + [("normal text 200k", prose)]
    print(f"{'input':<18} {'renderer':<14} {'N ms':>9} {'4N ms':>9} {'growth':>7} {'x baseline':>11}")
    worst_growth, worst_ms = 0.0, 0.0
    for name, make in cases:
        size = 200_000 if name.startswith("normal") else n
        small, large = make(size), make(4 * size)
        base = max(best(escape, small, args.repeat), 1e-6)
        for rname, fn in RENDERERS:
            t1, t2 = best(fn, small, args.repeat), best(fn, large, args.repeat)
            growth = t2 / max(t1, 1e-6)
            worst_growth = max(worst_growth, growth if t1 > 0.002 else 0.0)  # tiny times are noise
            worst_ms = max(worst_ms, t1 * 1000 if size == n else 0.0)
            print(f"{name:<18} {rname:<14} {t1 * 1000:9.2f} {t2 * 1000:9.2f} {growth:7.2f} {t1 / base:11.1f}")
    print(f"\nworst growth N -> 4N (renders over 2 ms): {worst_growth:.2f}   "
          f"slowest render of {n:,} characters: {worst_ms:.1f} ms")


if __name__ == "__main__":
    main()
