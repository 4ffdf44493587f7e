"""Thumbs up / down on answers: the buttons, the clicks through the real Bolt app, the durable record,
the comment form, /durabot status and the metric."""

from __future__ import annotations

import json

from agent_core.metrics import REGISTRY
from bots.slack import feedback as slack_feedback
from bots.slack.ids import ThreadRef

from tests.fakes.openai_server import Reply


def _feedback_elements(message: dict) -> list[dict]:
    return [el for b in message.get("blocks") or [] if b.get("type") == "context_actions"
            for el in b.get("elements") or [] if el.get("type") == "feedback_buttons"]


def _counted(rating: str) -> float:
    return REGISTRY.get_sample_value("durabot_feedback_total", {"rating": rating}) or 0.0


async def _status_text(h, event: dict) -> str:
    status, body = await h.sender.command(f"status C1:{event['ts']}", "U1")
    assert status == 200
    return json.loads(body)["text"]


async def _answered(h, text: str = "rate me") -> tuple[dict, dict, str]:
    event = await h.mention(text)
    reply = await h.final_reply("C1", event["ts"], f"echo: {text}")
    return event, reply, ThreadRef(h.fake.team, "C1", event["ts"]).conversation_id


async def test_every_answer_carries_feedback_buttons_and_a_thumbs_up_is_recorded(start_slack, fake_openai):
    h = await start_slack()
    event, reply, cid = await _answered(h)
    [buttons] = _feedback_elements(reply)  # the delivered answer, in a context_actions block
    assert buttons["positive_button"]["value"].startswith("up|")
    assert buttons["negative_button"]["value"].startswith("down|")
    ups = _counted("up")

    status, _ = await h.sender.click(h.sender.feedback_payload(reply, True, "U2", "C1"))
    assert status == 200
    [rating] = await h.agent.ratings(cid)
    assert (rating.turn_id, rating.by, rating.rating, rating.comment) == (event["ts"], "U2", "up", None)
    assert rating.at  # stamped by the workflow
    thanks = [e for e in h.fake.ephemerals if e["user"] == "U2"]
    assert len(thanks) == 1 and "helpful" in thanks[0]["text"] and thanks[0]["thread_ts"] == event["ts"]
    assert _counted("up") == ups + 1
    assert h.fake.views == []  # no comment form for a thumbs up

    assert "Feedback on answers: :+1: 1 · :-1: 0" in await _status_text(h, event)


async def test_thumbs_down_takes_a_comment_and_a_second_click_replaces_the_first(start_slack, fake_openai):
    h = await start_slack()
    event, reply, cid = await _answered(h)
    downs = _counted("down")

    await h.sender.click(h.sender.feedback_payload(reply, True, "U2", "C1"))
    await h.sender.click(h.sender.feedback_payload(reply, False, "U2", "C1"))  # changes their mind
    await h.sender.click(h.sender.feedback_payload(reply, True, "U3", "C1"))  # someone else
    ratings = {(r.by, r.rating) for r in await h.agent.ratings(cid)}
    assert ratings == {("U2", "down"), ("U3", "up")}
    assert _counted("down") == downs + 1

    [form] = h.fake.views  # opened with the thumbs down's trigger_id
    assert form["callback_id"] == "durabot:feedback" and form["blocks"][0]["optional"] is True
    assert "form" in [e for e in h.fake.ephemerals if e["user"] == "U2"][-1]["text"]

    submit = h.sender.view_submission(form, "U2", {"comment": {"comment": "the numbers were wrong"}})
    status, _ = await h.sender.click(submit)
    assert status == 200
    mine = [r for r in await h.agent.ratings(cid) if r.by == "U2"]
    assert [(r.rating, r.comment) for r in mine] == [("down", "the numbers were wrong")]
    assert "comment was recorded" in h.fake.ephemerals[-1]["text"]

    assert "Feedback on answers: :+1: 1 · :-1: 1" in await _status_text(h, event)


async def test_forged_and_foreign_feedback_values_record_nothing(start_slack, fake_openai):
    h = await start_slack()
    _event, reply, cid = await _answered(h)
    other = h.fake.add_user_message("C9", "elsewhere")
    forged = h.sender.feedback_payload(reply, True, "U2", "C1")
    forged["actions"][0]["value"] = f"up|{ThreadRef(h.fake.team, 'C9', other['ts']).conversation_id}|{other['ts']}"
    garbage = h.sender.feedback_payload(reply, False, "U2", "C1")
    garbage["actions"][0]["value"] = "sideways|x|y"
    for payload in (forged, garbage):
        assert (await h.sender.click(payload))[0] == 200
    assert await h.agent.ratings(cid) == []
    assert await h.agent.status(ThreadRef(h.fake.team, "C9", other["ts"]).conversation_id) is None
    refusals = [e for e in h.fake.ephemerals if e["text"] == slack_feedback.NOT_UNDERSTOOD]
    assert len(refusals) == 2


async def test_ratings_survive_continue_as_new(start_slack, make_agent, fake_openai):
    agent = await make_agent(max_history_events=10)  # every turn ends with a continue-as-new
    h = await start_slack(agent=agent)
    event, reply, cid = await _answered(h, "first")
    first_run = (await agent.handle(cid).describe()).run_id
    await h.sender.click(h.sender.feedback_payload(reply, False, "U2", "C1"))
    follow = h.fake.add_user_message("C1", "second", thread_ts=event["ts"])
    assert (await h.sender.event(follow))[0] == 200
    await h.final_reply("C1", event["ts"], "echo: second")
    await h.fake.wait_for(
        lambda: len([m for m in h.fake.bot_messages("C1", event["ts"]) if _feedback_elements(m)]) == 2)

    assert (await agent.handle(cid).describe()).run_id != first_run
    assert [(r.turn_id, r.by, r.rating) for r in await agent.ratings(cid)] == [(event["ts"], "U2", "down")]
    assert "Feedback on answers: :+1: 0 · :-1: 1" in await _status_text(h, event)


async def test_failed_answers_carry_no_feedback_buttons(start_slack, fake_openai):
    fake_openai.script = lambda body: Reply(status=400, error="bad request")
    h = await start_slack()
    event = await h.mention("this fails")
    reply = await h.final_reply("C1", event["ts"], "could not finish")
    assert _feedback_elements(reply) == []


async def test_a_streaming_replicas_last_word_carries_the_same_buttons(make_agent, fake_slack, fake_openai):
    """The replica that streams while another delivers writes the answer's last part itself: with the
    same feedback buttons as the delivery, so whichever write lands last shows them."""
    from tests.slack.test_stream_end import streaming_without_delivery, until

    fake_openai.script = lambda body: Reply(text="streamed answer " * 5, token_delay=0.02)
    agent, _web, editor, streams, ref, turn = await streaming_without_delivery(make_agent, fake_slack, "hi")
    handle = await agent.run_async("hi", ref.conversation_id, message_id=turn)
    streams.start(ref, turn)
    await handle.result(timeout=20)
    await until(lambda: streams.open_count == 0)
    [answer] = fake_slack.bot_messages("C1", turn)
    [buttons] = _feedback_elements(answer)
    assert buttons["positive_button"]["value"] == f"up|{ref.conversation_id}|{turn}"
    assert answer["blocks"][0]["text"]["text"] == answer["text"]
    await editor.aclose()
