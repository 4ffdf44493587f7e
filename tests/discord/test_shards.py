"""Sharding (``DISCORD_SHARDS``) and the global request limit, against the fake Discord.

Shards: the real discord.py sharded client identifies each shard, the fake routes each guild's events
to the shard that owns it, and a mention in a guild on either shard becomes a turn answered in its
thread. The range form runs as two real ``durabot discord`` processes, one shard each.

The global limit: a burst of REST calls from one process leaves at most 50 in any second, a global 429
pauses every call for its Retry-After, and interaction responses are not held behind the queue.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

from agent_core.errors import UserError
from bots.core.ratelimit import TokenBucket
from bots.discord.apitrace import paced
from bots.discord.app import DiscordAdapter
from bots.discord.ratelimit import GLOBAL_BURST, GLOBAL_LIMIT, GLOBAL_MARGIN, global_pacer
from bots.discord.settings import ShardPlan, parse_shards
from bots.discord.shards import ShardedDurabotClient
from tests.discord.test_process_kill import until
from tests.fakes.discord_server import FakeDiscord
from tests.procs.harness import Proc, worker_env
from workers.settings import Settings


@pytest.fixture
async def serve(fake_discord: FakeDiscord, task_queue: str) -> AsyncIterator[Callable[..., Any]]:
    """``await serve(agent, shards=...)``: a DiscordAdapter serving in this loop (kept, to reach its
    client and pacer), once the shards it runs are connected."""
    running: list[asyncio.Task] = []

    async def start(agent: Any, *, shards: str | None = None,
                    want: frozenset[int] = frozenset({0})) -> DiscordAdapter:
        env = {**fake_discord.env(), "DURABOT_TASK_QUEUE": task_queue}
        if shards is not None:
            env["DISCORD_SHARDS"] = shards
        adapter = DiscordAdapter(Settings.load(env=env, dotenv=None), agent, guild_ready_timeout=0.1)
        task = asyncio.create_task(adapter.serve())
        running.append(task)
        # discord.py waits 5 s before each IDENTIFY after a process's first (Discord's identify limit).
        await fake_discord.wait_for(lambda: task.done() or want <= fake_discord.connected_shards(),
                                    timeout=30, what=f"shards {sorted(want)} to connect")
        if task.done():
            task.result()
        return adapter

    yield start
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


async def ask_in(fake: FakeDiscord, channel_id: int, text: str) -> int:
    """A mention in ``channel_id``; returns the thread its answer must land in, once it has."""
    question = await fake.user_message(text, channel_id=channel_id)
    thread_id = int(question["id"])
    await fake.wait_for(lambda: any(m["content"] == f"echo: {text}" for m in fake.bot_messages(thread_id)),
                        timeout=30, what=f"the answer to {text!r} in its thread")
    return thread_id


def routed_to(fake: FakeDiscord, guild_id: int) -> set[int]:
    return {shard for shard, event, gid in fake.routed if event == "MESSAGE_CREATE" and gid == str(guild_id)}


# ---------------------------------------------------------------------------------------- shards

async def test_two_shards_in_one_process_answer_in_both(make_agent, fake_discord, serve):
    fake = fake_discord
    g0, c0 = fake.add_guild(shard=0, of=2)
    g1, c1 = fake.add_guild(shard=1, of=2)
    agent = await make_agent()
    adapter = await serve(agent, shards="2", want={0, 1})
    assert isinstance(adapter.client, ShardedDurabotClient)
    assert sorted(fake.shards_identified) == [(0, 2), (1, 2)]
    assert sorted(adapter.client.shards) == [0, 1]

    t0, t1 = await asyncio.gather(ask_in(fake, c0, "hello from shard zero"),
                                  ask_in(fake, c1, "hello from shard one"))
    assert routed_to(fake, g0) == {0} and routed_to(fake, g1) == {1}
    assert fake.channels[t0]["guild_id"] == str(g0) and fake.channels[t1]["guild_id"] == str(g1)
    assert await agent.status(f"discord:{g0}:{c0}:{t0}") is not None
    assert await agent.status(f"discord:{g1}:{c1}:{t1}") is not None
    assert len(fake.calls_to("PUT", "/commands")) == 1  # the bot's commands, synced once
    assert not fake.calls_to("GET", "/gateway/bot")  # the count was given: Discord is not asked

    dm = fake.open_dm(fake.bob)  # direct messages come to shard 0
    await fake.user_message("hello in private", author=fake.bob, channel_id=dm, mention=False)
    await fake.wait_for(lambda: any(m["content"] == "echo: hello in private" for m in fake.bot_messages(dm)),
                        what="the answer to the DM")
    assert {shard for shard, event, gid in fake.routed if event == "MESSAGE_CREATE" and gid is None} == {0}


async def test_auto_takes_discords_recommended_count(make_agent, fake_discord, serve):
    fake = fake_discord
    fake.gateway_shards = 2
    _, c1 = fake.add_guild(shard=1, of=2)
    agent = await make_agent()
    adapter = await serve(agent, shards="auto", want={0, 1})
    assert [c.status for c in fake.calls_to("GET", "/gateway/bot")] == [200]
    assert adapter.client.shard_count == 2
    assert sorted(fake.shards_identified) == [(0, 2), (1, 2)]
    await ask_in(fake, c1, "which shard am I on?")


async def test_unset_keeps_one_unsharded_connection(make_agent, fake_discord, serve):
    agent = await make_agent()
    adapter = await serve(agent)
    assert type(adapter.client).__name__ == "DurabotClient"
    assert fake_discord.shards_identified == [(0, 1)]  # IDENTIFY without a shard field
    await ask_in(fake_discord, fake_discord.channel_id, "still one connection")


async def test_sharded_client_survives_a_malformed_payload(make_agent, fake_discord, serve, caplog):
    """discord.py's sharded client closes itself on a payload it cannot read; the adapter starts a new one."""
    fake = fake_discord
    agent = await make_agent()
    adapter = await serve(agent, shards="1")
    first = adapter.client
    identifies = len(fake.shards_identified)
    await fake.send_raw("{this is not json")
    await fake.wait_for(lambda: len(fake.shards_identified) > identifies and fake.connected_shards() == {0},
                        what="a new client to identify")
    assert adapter.client is not first and first.is_closed()
    await ask_in(fake, fake.channel_id, "still there?")
    assert "the Discord connection failed" in caplog.text


async def test_shard_ranges_run_as_two_processes(temporal_server, fake_openai, task_queue, tmp_path: Path):
    """``DISCORD_SHARDS=2:0-0`` and ``2:1-1``: one replica per range, each answering its guilds."""
    fake = await FakeDiscord().start()
    g0, c0 = fake.add_guild(shard=0, of=2)
    g1, c1 = fake.add_guild(shard=1, of=2)
    env = worker_env(temporal_server.address, task_queue, fake_openai.base_url, tmp_path, **fake.env())
    procs: list[Proc] = []
    try:
        for shard in (0, 1):
            proc = Proc(["discord"], {**env, "DISCORD_SHARDS": f"2:{shard}-{shard}"},
                        tmp_path / f"shard{shard}.log")
            procs.append(proc)
            await until(fake, lambda: shard in fake.connected_shards(), timeout=60,
                        what=f"the process of shard {shard} to connect", proc=proc)
        assert sorted(fake.shards_identified) == [(0, 2), (1, 2)]

        await asyncio.gather(ask_in(fake, c0, "hello shard zero"), ask_in(fake, c1, "hello shard one"))
        assert routed_to(fake, g0) == {0} and routed_to(fake, g1) == {1}
        # The commands belong to the bot: only the replica running shard 0 syncs them.
        await fake.wait_for(lambda: fake.calls_to("PUT", "/commands"), what="the command sync")
        assert len(fake.calls_to("PUT", "/commands")) == 1
        assert all(p.proc.poll() is None for p in procs)
    finally:
        for p in procs:
            p.stop()
        await fake.stop()


@pytest.mark.parametrize(("value", "plan"), [
    (None, None), ("", None), ("auto", ShardPlan()), (" AUTO ", ShardPlan()), ("3", ShardPlan(3)),
    ("4:1-2", ShardPlan(4, (1, 2))), ("4:3", ShardPlan(4, (3,))), ("1:0-0", ShardPlan(1, (0,))),
])
def test_shard_forms(value, plan):
    assert parse_shards(value) == plan
    env = {} if value is None else {"DISCORD_SHARDS": value}
    assert Settings.load(env=env, dotenv=None).discord.shard_plan == plan


@pytest.mark.parametrize(("value", "says"), [
    ("two", "not understood"), ("-1", "not understood"), ("4:", "not understood"), ("4:1-", "not understood"),
    ("0", "at least 1"), ("4:2-1", "runs backwards"), ("4:1-4", "from 0 to 3"), ("4:9", "from 0 to 3"),
])
def test_bad_shard_forms_say_what_is_accepted(value, says):
    with pytest.raises(UserError) as err:
        Settings.load(env={"DISCORD_SHARDS": value}, dotenv=None)
    message = str(err.value)
    assert message.startswith(f"DISCORD_SHARDS={value!r}") and says in message
    if says in ("not understood", "at least 1", "from 0 to 3"):
        assert "'auto'" in message and "'4:0-1'" in message


# ------------------------------------------------------------------------------ the global limit

def test_bucket_never_lets_more_than_the_limit_into_a_second():
    """The pacer's arithmetic on its own clock: 120 calls in a row, each as soon as the bucket allows."""
    bucket = global_pacer().bucket
    bucket.at = now = 100.0
    sent = []
    for _ in range(120):
        now += bucket.delay(now=now)
        bucket.take(now=now)
        sent.append(now)
    assert sent[:GLOBAL_BURST] == [100.0] * GLOBAL_BURST  # a short burst goes at once
    in_a_second = max(sum(1 for t in sent if start <= t <= start + 1.0) for start in sent)
    assert GLOBAL_LIMIT - 3 <= in_a_second <= GLOBAL_LIMIT  # close to the limit, never past it
    in_the_margin = max(sum(1 for t in sent if start <= t <= start + 1.0 + GLOBAL_MARGIN) for start in sent)
    assert in_the_margin == GLOBAL_LIMIT  # the limit is reached only over the window plus its margin
    assert sent[-1] - sent[0] >= 2.0  # 120 calls need three seconds' budgets
    bucket.pause(0.75, now=now)
    assert bucket.delay(now=now) == pytest.approx(0.75)  # a pause outlasts any token

    exact = TokenBucket.at_most(GLOBAL_LIMIT, 1.0, GLOBAL_BURST)  # the shape, without a margin
    exact.at = now = 0.0
    times = []
    for _ in range(2 * GLOBAL_LIMIT):
        now += exact.delay(now=now)
        exact.take(now=now)
        times.append(now)
    assert max(sum(1 for t in times if start <= t <= start + 1.0) for start in times) == GLOBAL_LIMIT


def test_interaction_routes_are_not_paced():
    assert not paced("POST", "/interactions/1/tok/callback")
    assert not paced("POST", "/webhooks/1/tok")
    assert not paced("PATCH", "/webhooks/1/tok/messages/@original")
    assert paced("POST", "/channels/1/messages")
    assert paced("GET", "/gateway/bot")


async def test_a_burst_is_paced_and_interactions_skip_the_queue(make_agent, fake_discord, serve):
    fake = fake_discord
    agent = await make_agent()
    adapter = await serve(agent, shards="2", want={0, 1})
    channels = [fake.foreign_channel(guild=False) for _ in range(120)]
    paths = {f"/channels/{cid}" for cid in channels}

    burst = asyncio.gather(*(adapter.client.fetch_channel(cid) for cid in channels))
    await fake.wait_for(lambda: len([c for c in fake.calls if c.path in paths]) >= 20,
                        what="the burst to start")
    it = await fake.slash("status", fake.alice, fake.channel_id)  # an answer due within 3 s
    fetched = await asyncio.wait_for(burst, 30)

    assert sorted(c.id for c in fetched) == sorted(channels)
    calls = [c for c in fake.calls if c.path in paths]
    assert [c.status for c in calls] == [200] * 120
    # At most 50 in any second: counted over 0.8 s, as arrivals may lag the sends by up to 0.2 s.
    assert fake.busiest(0.8, calls) <= GLOBAL_LIMIT
    assert fake.busiest(0.8) <= GLOBAL_LIMIT  # everything the process sent, not only the burst
    assert calls[-1].at - calls[0].at >= 2.0
    # The slash command's answer did not wait behind the queue of channel reads.
    await fake.wait_for(lambda: it.responses, what="the slash command's response")
    assert it.first_response_after is not None and it.first_response_after < 1.0
    answered = next(c.at for c in fake.calls if c.path.startswith(f"/interactions/{it.id}/"))
    assert answered < calls[-1].at - 0.5
    print(f"120 paced requests over {calls[-1].at - calls[0].at:.2f} s, at most {fake.busiest(1.0, calls)} in "
          f"any second; the slash command answered after {it.first_response_after * 1000:.0f} ms")


async def test_a_global_429_pauses_every_request(make_agent, fake_discord, serve):
    fake = fake_discord
    agent = await make_agent()
    adapter = await serve(agent)
    channels = [fake.foreign_channel(guild=False) for _ in range(40)]
    paths = {f"/channels/{cid}" for cid in channels}
    pause = 0.8
    fake.global_limit(pause)

    await asyncio.wait_for(asyncio.gather(*(adapter.client.fetch_channel(cid) for cid in channels)), 30)

    calls = [c for c in fake.calls if c.path in paths]
    limited = [c for c in calls if c.status == 429]
    assert len(limited) == 1 and len([c for c in calls if c.status == 200]) == 40  # the 429'd one retried
    hit = limited[0].at
    during = [c for c in calls if hit < c.at < hit + pause - 0.05]
    # Only requests already on their way when the 429 came back; paced on, some 35 more would be here.
    assert len(during) <= GLOBAL_BURST + 3, [round(c.at - hit, 3) for c in during]
    assert adapter.pacer.paused_until == pytest.approx(hit + pause, abs=0.3)
    after = [c for c in calls if c.at >= hit + pause - 0.05]
    assert len(after) >= 40 - len(during)
    assert fake.busiest(0.8, calls) <= GLOBAL_LIMIT
    print(f"global 429: {len(during)} request(s) already on their way, the next after "
          f"{min(c.at for c in after) - hit:.3f} s (retry_after {pause} s)")
