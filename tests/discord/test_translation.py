"""The pure parts: routing, ids, rendering, tables, approval rights."""

from __future__ import annotations

from bots.core.policy import may_decide
from bots.core.tables import tables_to_code_blocks
from bots.discord.ids import (
    ConversationRef,
    button_custom_id,
    nonce,
    parse_button_custom_id,
    parse_conversation_id,
)
from bots.discord.ingress import Incoming, classify, context_from_history
from bots.discord.render import reply_parts, thread_name

BOT = 1_100_000_000_000_000_001
SNOW = 1_234_567_890_123_456_789


def msg(**kw):
    base = dict(message_id=SNOW + 9, author_id=SNOW + 1, author_is_bot=False, content=f"<@{BOT}> hi",
                guild_id=SNOW, channel_id=SNOW + 2, mentions_bot=True)
    return Incoming(**{**base, **kw})


def test_routing():
    r = classify(msg(), BOT, set())
    assert r.kind == "new_thread" and r.text == "hi"
    assert r.ref.conversation_id == f"discord:{SNOW}:{SNOW + 2}:{SNOW + 9}"
    assert classify(msg(mentions_bot=False, content="hi"), BOT, set()) is None
    assert classify(msg(author_is_bot=True), BOT, set()) is None
    assert classify(msg(author_id=BOT), BOT, set()) is None
    assert classify(msg(content=f"<@{BOT}>"), BOT, set()).kind == "hint"  # a bare mention: no empty turn
    assert classify(msg(content=f"<@{BOT}> ?!"), BOT, set()).kind == "hint"
    # Files and no text: a turn that reads the files, not a hint.
    assert classify(msg(content=f"<@{BOT}>", has_attachments=True), BOT, set()).kind == "new_thread"
    owned = classify(msg(parent_id=SNOW + 2, thread_owner_id=BOT, mentions_bot=False, content="more"), BOT, set())
    assert owned.kind == "thread" and not owned.needs_context
    foreign = msg(parent_id=SNOW + 2, thread_owner_id=SNOW + 5)
    assert classify(foreign, BOT, set()).needs_context
    assert classify(msg(parent_id=SNOW + 2, thread_owner_id=SNOW + 5, mentions_bot=False), BOT, set()) is None
    dm = classify(msg(guild_id=None, mentions_bot=False, content="yo"), BOT, set())
    assert dm.kind == "dm" and dm.ref.conversation_id == f"discord:@me:{SNOW + 2}:{SNOW + 2}"


def test_ids_round_trip_within_limits():
    ref = ConversationRef(str(SNOW), str(SNOW + 1), str(SNOW + 2))
    cid = button_custom_id(ref, "a123", True)
    assert len(cid) <= 100 and parse_button_custom_id(cid) == (ref, "a123", True)
    dm = ConversationRef("@me", str(SNOW), str(SNOW))
    assert parse_button_custom_id(button_custom_id(dm, "a1", False)) == (dm, "a1", False)
    assert parse_conversation_id(ref.conversation_id) == ref
    assert parse_conversation_id("slack:T:C:1") is None
    assert parse_button_custom_id("something-else") is None
    assert len(nonce("c", "t", 1)) <= 25 and nonce("c", "t", 1) == nonce("c", "t", 1) != nonce("c", "t", 2)


def test_rendering():
    assert reply_parts("") == ["\N{HOURGLASS WITH FLOWING SAND} Thinking\N{HORIZONTAL ELLIPSIS}"]
    parts = reply_parts("x " * 3000)
    assert len(parts) == 3 and all(len(p) <= 2000 for p in parts)
    assert reply_parts("```py\nprint(1)", partial=True)[0].endswith("```")
    assert reply_parts("answer", ["get_time", "get_time"])[0].startswith("-# ")
    assert len(thread_name("word " * 100)) <= 100
    assert thread_name(f"<@{BOT}>   ") == "durabot"


def test_tables():
    out = tables_to_code_blocks("| a | b |\n|---|---|\n| 1 | 2 |")
    assert out == "```\na | b\n--+--\n1 | 2\n```"
    assert tables_to_code_blocks("no | table here") == "no | table here"
    fenced = "```\n| a | b |\n|---|---|\n```"
    assert tables_to_code_blocks(fenced) == fenced


def test_context_is_bounded_and_attributed():
    history = [(1, "ann", "old " * 10), (BOT, "durabot", "earlier answer"), (2, "bo", "latest")]
    ctx = context_from_history(history, BOT, max_chars=30)
    assert [(m.role, m.content) for m in ctx] == [("assistant", "earlier answer"), ("user", "latest")]
    assert ctx[1].name == "bo"


def test_approval_rights():
    assert may_decide("1", "1", ["requester"], admin=False)
    assert not may_decide("2", "1", ["requester"], admin=False)
    assert may_decide("2", "1", ["requester"], admin=True)
    assert may_decide("2", "1", ["anyone"], admin=False)
    assert may_decide("3", "1", ["3"], admin=False) and not may_decide("1", "1", ["3"], admin=False)
