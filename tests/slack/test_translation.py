"""Pure translation functions: ids and links, event translation, thread context, mrkdwn, budgets."""

from __future__ import annotations

from agent_core.settings import Settings
from bots.slack.approvals import may_decide
from bots.slack.ids import ThreadRef, button_ids, parse_button, parse_conversation_id, parse_thread_reference
from bots.slack.ingress import thread_context, translate_event
from bots.core.ratelimit import SlidingWindow
from bots.slack.mrkdwn import to_mrkdwn


def test_ids_and_links_round_trip():
    ref = ThreadRef("T1", "C1", "1700000000.000100")
    assert ref.conversation_id == "slack:T1:C1:1700000000.000100"
    assert parse_conversation_id(ref.conversation_id) == ref
    assert parse_thread_reference("T1", "C1:1700000000.000100") == ref
    assert parse_thread_reference("T1", "<https://x.slack.com/archives/C1/p1700000000000100|link>") == ref
    reply = "https://x.slack.com/archives/C1/p1700000009000200?thread_ts=1700000000.000100&cid=C1"
    assert parse_thread_reference("T1", reply) == ref
    assert parse_thread_reference("T2", ref.conversation_id) is None  # another workspace
    assert parse_thread_reference("T1", "nonsense") is None
    dm = ThreadRef("T1", "D1", "")
    assert parse_conversation_id(dm.conversation_id) == dm
    action, value = button_ids("approve", ref.conversation_id, "a3", "U1")
    button = parse_button(action, value)
    assert (button.decision, button.conversation_id, button.approval_id, button.requested_by) == (
        "approve", ref.conversation_id, "a3", "U1")
    assert parse_button("other:approve:a1", value) is None
    assert parse_button(action, "x|y") is None


def test_translate_event():
    base = {"type": "app_mention", "user": "U1", "text": "<@UBOT> hi  there", "channel": "C1", "ts": "10.000001"}
    msg = translate_event(base, "T1", "UBOT", "BBOT")
    assert msg.text == "hi there" and msg.ref.thread_ts == "10.000001" and not msg.in_existing_thread
    threaded = translate_event(dict(base, thread_ts="9.000001"), "T1", "UBOT", "BBOT")
    assert threaded.ref.thread_ts == "9.000001" and threaded.in_existing_thread
    plain = dict(base, type="message", channel_type="channel")
    assert translate_event(plain, "T1", "UBOT", "BBOT") is None  # app_mention handles it
    follow = dict(plain, text="no mention", thread_ts="9.000001")
    assert translate_event(follow, "T1", "UBOT", "BBOT").needs_membership
    assert translate_event(dict(follow, bot_id="B2"), "T1", "UBOT", "BBOT") is None
    assert translate_event(dict(follow, user="UBOT"), "T1", "UBOT", "BBOT") is None
    assert translate_event(dict(follow, subtype="message_changed"), "T1", "UBOT", "BBOT") is None
    dm = translate_event(dict(plain, channel="D1", channel_type="im"), "T1", "UBOT", "BBOT")
    assert dm.ref.conversation_id == "slack:T1:D1:dm" and not dm.needs_membership


def test_thread_context_is_bounded_and_attributed():
    messages = [{"ts": f"{i}.0", "user": "U1", "text": "x" * 3000} for i in range(1, 40)]
    messages.append({"ts": "50.0", "user": "UBOT", "bot_id": "B", "text": "my answer"})
    messages.append({"ts": "60.0", "user": "U2", "text": "the mention itself"})
    ctx = thread_context(messages, "UBOT", "60.0")
    assert ctx[-1].role == "assistant" and ctx[-1].content == "my answer"
    assert sum(len(m.content) for m in ctx) <= 12_000
    assert all("the mention itself" not in m.content for m in ctx)


def test_mrkdwn():
    out = to_mrkdwn("# Title\n**bold**, *it*, ~~gone~~, [site](https://e.com) & <x>\n- a\n```py\nif a<b: **x**\n```")
    assert out.split("\n") == [
        "*Title*", "*bold*, _it_, ~gone~, <https://e.com|site> &amp; &lt;x&gt;", "• a", "```",
        "if a&lt;b: **x**", "```",
    ]


def test_who_may_decide():
    default = Settings.load(env={"DURABOT_ADMINS": "UA"}, dotenv=None)
    assert may_decide("U1", "U1", default) and may_decide("UA", "U1", default)
    assert not may_decide("U2", "U1", default)
    listed = Settings.load(env={"DURABOT_APPROVERS": "U5"}, dotenv=None)
    assert may_decide("U5", "U1", listed) and not may_decide("U1", "U1", listed)
    assert may_decide("U9", "U1", Settings.load(env={"DURABOT_APPROVERS": "anyone"}, dotenv=None))


def test_sliding_window_keeps_a_reserve():
    w = SlidingWindow(limit=5, window=10)
    for t in range(3):
        w.record(now=float(t))
    assert w.delay(now=3.0) == 0
    assert w.delay(reserve=2, now=3.0) == 7.0  # only 3 may be used while 2 are kept: wait for t=0 to leave
    w.pause(100)
    assert w.delay() > 50
