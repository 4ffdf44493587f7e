"""Ratings of answers on the conversation workflow: one per (turn, person), the latest wins, refused
when malformed, counted by the status query, carried across an idle end and merged under the ratings
a revived run took before its restore."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent_core import AgentMode, timeouts_for
from agent_core.errors import UserError
from agent_core.feedback import FEEDBACK_BYTES, MAX_RATINGS
from agent_core.limits import payload_size


async def test_a_second_rating_by_the_same_person_replaces_the_first(make_agent, fake_openai):
    agent = await make_agent()
    first = await agent.run("hello", conversation_id="rated")
    second = await agent.run("again", conversation_id="rated")
    await agent.rate("rated", first.turn_id, "U1", "up")
    await agent.rate("rated", first.turn_id, "U1", "down", "  too vague ")
    await agent.rate("rated", first.turn_id, "U2", "up", "   ")
    await agent.rate("rated", second.turn_id, "U1", "up")
    got = [(r.turn_id, r.by, r.rating, r.comment) for r in await agent.ratings("rated")]
    assert got == [(first.turn_id, "U1", "down", "  too vague "), (first.turn_id, "U2", "up", None),
                   (second.turn_id, "U1", "up", None)]
    st = await agent.status("rated")
    assert (st.feedback.up, st.feedback.down) == (2, 1)
    with pytest.raises(UserError, match="sideways"):
        await agent.rate("rated", first.turn_id, "U1", "sideways")
    with pytest.raises(UserError, match="who gave it"):
        await agent.rate("rated", first.turn_id, "", "up")
    assert len(await agent.ratings("rated")) == 3


async def test_ratings_outlive_an_idle_end_and_merge_under_newer_ones(make_agent, fake_openai):
    agent = await make_agent(timeouts=replace(timeouts_for(AgentMode.INTERACTIVE), idle=0.5))
    turn = (await agent.run("remember 42", conversation_id="idle-rated")).turn_id
    await agent.rate("idle-rated", turn, "U1", "up")
    await agent.rate("idle-rated", turn, "U3", "up")
    carry = await agent.handle("idle-rated").result()  # the run ends for want of messages
    assert [(f.by, f.rating) for f in carry.feedback] == [("U1", "up"), ("U3", "up")]
    assert await agent.status("idle-rated") is None

    # Rating an ended conversation starts it again: the rating is taken before the restore, and the
    # restored ratings go under it.
    kept = await agent.rate("idle-rated", turn, "U1", "down")
    assert kept.rating == "down" and kept.at
    await agent.rate("idle-rated", turn, "U2", "up")
    carry = await agent.handle("idle-rated").result()
    assert sorted((f.by, f.rating) for f in carry.feedback) == [("U1", "down"), ("U2", "up"), ("U3", "up")]
    assert carry.turns == 1  # the transcript came back with it


def test_the_book_is_bounded_and_keeps_the_newest():
    from agent_core.feedback import FeedbackBook
    from agent_core.types import Feedback

    book = FeedbackBook()
    for i in range(MAX_RATINGS + 5):
        book.record(Feedback(f"t{i}", "U1", "up", "x" * 10_000), at="now")
    kept = book.carry()  # the newest that fit the carried budget, each comment cut to its own
    assert kept[-1].turn_id == f"t{MAX_RATINGS + 4}" and all(len(f.comment or "") < 2_100 for f in kept)
    assert sum(payload_size(f) for f in kept) <= FEEDBACK_BYTES < sum(payload_size(f) for f in kept) + 2_200
    assert book.counts().up == MAX_RATINGS  # what is counted is all it holds
    book.record(Feedback(kept[0].turn_id, "U1", "down"), at="later")  # a change moves it to the newest end
    assert book.carry()[-1].turn_id == kept[0].turn_id and book.counts().down == 1

    small = FeedbackBook()
    for i in range(MAX_RATINGS + 5):
        small.record(Feedback(f"t{i}", "U1", "up"), at="now")
    assert [f.turn_id for f in small.carry()] == [f"t{i}" for i in range(5, MAX_RATINGS + 5)]
