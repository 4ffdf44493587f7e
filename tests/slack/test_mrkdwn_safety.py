"""No model text can become live Slack markup (mass mentions, user or channel links), and no string
makes the renderers raise. Property style: hand-written hostile inputs, then many generated ones."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from bots.discord.render import reply_parts
from bots.slack.mrkdwn import to_mrkdwn
from bots.slack.render import MAX_PART, answer_parts, cancelled_text, failed_text, live_text

# The only markup the renderer may write: a link to an http(s) URL that cannot end early.
_OWN_LINK = re.compile(r"<https?://[^\s<>|]+(\|[^<>]*)?>")
_ENTITY = re.compile(r"&(amp|lt|gt);")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

HOSTILE = [
    "[a](http://x><!channel>)",
    "[a](http://x|<!here>)",
    "[<!everyone>](https://e.com)",
    "![<@U123>](http://i/x.png?a=<!channel>)",
    "<!channel> <!here> <!everyone> <@U12345> <@W1|bob> <#C1|general> <!subteam^S1|team>",
    "<https://e.com|<!channel>>",
    "<https://e.com><!here>",
    "<http://x <!here>>",
    "`<!channel>` ``<@U1>`` ```<!here>```",
    "```\n<!channel>\n```",
    "```py\n[a](http://x><!channel>)\n```\n<!here>",
    "**<!channel>** *<@U1>* _<!here>_ ~~<!everyone>~~ ***<#C1>***",
    "**[a](http://x><!channel>)** and ~~[b](https://y|z)~~",
    "&lt;!channel&gt; &#60;!here&#62; &amp;lt;@U1&amp;gt; &lt;",
    "<b>bold</b> <script>alert(1)</script> <!-- <!channel> -->",
    "# <!channel>\n## [x](http://a><!here>) ##\n> <@U1>\n- <!everyone>",
    "[a](http://x)>!channel>",
    "[a](http://x\x00><!channel>)",
    "[[[a](http://x><!here>)",
    "[a](https://e.com/<!channel>) [b](https://e.com/\ud800)",
    "\x00<!channel>\x00",
    "<\u202e!channel>",
    "<\x00!here>",
    "[a]\n(http://x><!channel>)",
]

PIECES = [
    "<", ">", "|", "!", "@", "#", "^", "&", ";", "[", "]", "(", ")", "`", "```", "*", "**", "***", "_",
    "__", "~~", "~", " ", "\n", "a", "x1", "http://", "https://e.com/", "<!channel>", "<!here>", "<@U1>",
    "<#C1>", "<!subteam^S1>", "&lt;", "&gt;", "&amp;", "![", "](", "<https://", "# ", "- ", "> ", "\x00",
    "\ud800", "\u2028", "\u202e", "\x85", "\r\n", "\t", "\\",
]


def assert_safe_slack(out: str) -> None:
    """Every ``<`` opens a link the renderer wrote; every ``&`` is one of Slack's three escapes."""
    for m in re.finditer("<", out):
        link = _OWN_LINK.match(out, m.start())
        assert link is not None, f"markup at {m.start()}: {out[m.start():m.start() + 40]!r} in {out!r}"
    for m in re.finditer("&", out):
        assert _ENTITY.match(out, m.start()), f"stray & at {m.start()} in {out!r}"
    assert not _CONTROL.search(out), repr(out)
    out.encode("utf-8")  # what Slack receives: must encode


def generated(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 30))) for _ in range(count)]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_markdown_renders_no_live_markup(text):
    assert_safe_slack(to_mrkdwn(text))
    assert_safe_slack(live_text(text, ["tool"], None))
    for part in answer_parts(text, []):
        assert_safe_slack(part)


def test_every_pair_of_pieces_and_many_random_texts():
    pairs = ["".join(p) for p in itertools.product(PIECES, repeat=2)]
    triples = ["[" + a + "](http://x" + b + ")" + c for a, b, c in itertools.product(PIECES, repeat=3)][:20_000]
    rng = random.Random(3)
    any_code_points = ["".join(chr(rng.randrange(0x110000)) for _ in range(rng.randint(1, 40))) for _ in range(500)]
    for text in pairs + triples + generated(3_000, seed=7) + any_code_points:
        assert_safe_slack(to_mrkdwn(text))
    assert_safe_slack(live_text("ok", ["<!channel>\x00", "a`b"], "running <@U1>\ud800"))


def test_links_keep_working_with_safe_urls():
    assert to_mrkdwn("[site](https://e.com/a?b=1&c=2)") == "<https://e.com/a?b=1&amp;c=2|site>"
    assert to_mrkdwn("[a](http://x><!channel>)") == "<http://x%3E%3C!channel%3E|a>"
    assert to_mrkdwn("[a](http://x|y)") == "<http://x%7Cy|a>"
    assert to_mrkdwn("see <https://e.com/x>") == "see <https://e.com/x>"
    assert to_mrkdwn("![logo](https://e.com/l.png)") == "<https://e.com/l.png|logo>"
    assert to_mrkdwn("`<!here>`") == "`&lt;!here&gt;`"


def test_formatting_still_converts():
    assert to_mrkdwn("***both*** **b** __b__ *i* _i_ ~~s~~ a*b*c __init__") == (
        "*_both_* *b* *b* _i_ _i_ ~s~ a*b*c *init*")
    assert to_mrkdwn("**[a](https://e.com)** `**x**`") == "*<https://e.com|a>* `**x**`"
    assert to_mrkdwn("### Title ###\n* item\n```x```") == "*Title*\n• item\n```x```"
    assert to_mrkdwn("**a **b") == "**a **b"  # an opener without a closer stays text


def test_control_characters_are_cleaned_never_raised():
    text = "a\x00b\x07c\x1bd\x7fe\x9ff\ud800g\udfffh\u202ei\u2066j\r\nk\u2028l"
    out = to_mrkdwn(text)
    assert out == "abcdef\ufffdg\ufffdhij\nk\nl"
    assert_safe_slack(out)
    assert "\x00" not in failed_text("boom\x00\ud800") and failed_text("  ").count("unknown error") == 1
    assert_safe_slack(cancelled_text("half \x00 done <!channel>", "U1").replace("<@U1>", ""))
    for part in reply_parts(text, ["t"], note="n\x00"):
        assert not _CONTROL.search(part)
        part.encode("utf-8")


def test_discord_never_raises_and_respects_limits():
    for text in HOSTILE + generated(1_000, seed=11):
        for partial in (False, True):
            parts = reply_parts(text, ["tool"], partial=partial)
            assert parts and all(len(p) <= 2000 for p in parts)
            assert all(not _CONTROL.search(p) for p in parts)


def test_live_text_is_bounded_and_cut_outside_links():
    link = "[site](https://e.com/" + "x" * 40 + ") "
    text = link * 2_000  # about 130,000 characters
    shown = live_text(text, [], None)
    assert len(shown) <= MAX_PART
    assert shown.split("\n")[0].count("<") == shown.split("\n")[0].count(">")
    assert "continues" in shown
    assert_safe_slack(shown)
    assert_safe_slack(live_text("&" * 30_000, [], None))
