"""How long a live follow waits for this process's delivery of a turn's end before it asks the
workflow: twice the longest recent lag between a final text and its local delivery, within bounds.

``TurnEnds`` is driven as the delivery activity and the follows drive it, with a clock of the test's
own so the lags are exact."""

from __future__ import annotations

import asyncio

import pytest

from bots.core.follow import LOCAL_WAIT, MAX_LOCAL_WAIT, RECENT_LAGS, TurnEnds
from agent_core.types import TurnStatus


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _done(turn: str) -> TurnStatus:
    return TurnStatus(turn_id=turn, state="finished", text="ok")


async def test_without_deliveries_seen_the_wait_is_the_shortest():
    assert TurnEnds().local_wait() == LOCAL_WAIT


async def test_the_wait_follows_the_slowest_recent_delivery_within_bounds():
    clock = Clock()
    ends = TurnEnds(clock)

    def delivered(turn: str, lag: float) -> None:
        fut = ends.watch("c", turn)
        ends.final_seen("c", turn)
        clock.now += lag
        ends.ended("c", turn, _done(turn))
        ends.unwatch("c", turn, fut)

    delivered("t1", 0.1)
    assert ends.local_wait() == LOCAL_WAIT  # quick deliveries: the fixed minimum
    delivered("t2", 1.2)
    assert ends.local_wait() == pytest.approx(2.4)  # twice the slowest of the recent ones
    delivered("t3", 0.3)
    assert ends.local_wait() == pytest.approx(2.4)
    delivered("t4", 30.0)
    assert ends.local_wait() == MAX_LOCAL_WAIT  # bounded: another replica's turn ends here at most this late
    for i in range(RECENT_LAGS):  # the slow ones age out as quick ones come
        delivered(f"q{i}", 0.2)
    assert ends.local_wait() == LOCAL_WAIT
    assert len(ends) == 0  # nothing kept once the follows are gone


async def test_only_a_followed_turn_with_its_final_text_counts():
    clock = Clock()
    ends = TurnEnds(clock)
    ends.final_seen("c", "unwatched")  # no follow here: not recorded
    clock.now += 9
    ends.ended("c", "unwatched", _done("unwatched"))
    fut = ends.watch("c", "t")  # followed, but its final text never came (a cancel): no lag
    clock.now += 9
    ends.ended("c", "t", _done("t"))
    assert (await asyncio.wait_for(fut, 5)).done  # the follow learns the end all the same
    ends.unwatch("c", "t", fut)
    assert ends.local_wait() == LOCAL_WAIT
