"""The durable record of streamed messages: written once per message, read by turn, old rows pruned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bots.slack.stream_records import KEEP, StreamRecords, streams_table


async def test_streamed_messages_are_recorded_by_turn_and_old_ones_pruned(tmp_path):
    url = f"sqlite:///{tmp_path}/records.db"
    records = StreamRecords.open(url)
    with records.engine.begin() as conn:  # a row from long ago, past any stream's life and delivery
        conn.execute(streams_table.insert(), {
            "conversation_id": "slack:T1:C1:1.0", "turn_id": "1.0", "ts": "1.5", "channel": "C1", "segment": 0,
            "started": datetime.now(UTC) - KEEP - timedelta(hours=1)})
    await records.started("slack:T1:C1:2.0", "2.0", 0, "C1", "2.1")
    await records.started("slack:T1:C1:2.0", "2.0", 1, "C1", "2.7")
    await records.started("slack:T1:C1:2.0", "2.0", 1, "C1", "2.7")  # the same start seen twice
    await records.started("slack:T1:C1:3.0", "3.0", 0, "C1", "3.1")
    again = StreamRecords.open(url)  # another process, or this one after a restart
    assert await again.of_turn("slack:T1:C1:2.0", "2.0") == {"2.1", "2.7"}
    assert await again.of_turn("slack:T1:C1:3.0", "3.0") == {"3.1"}
    assert await again.of_turn("slack:T1:C1:1.0", "1.0") == set()  # pruned
    assert await again.of_turn("slack:T1:C1:9.0", "9.0") == set()
