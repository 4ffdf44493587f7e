"""The whole adapter path: Slack events in, answers delivered to Slack, every part in its own process.

``durabot slack`` (HTTP, the real process, no embedded worker), one ``durabot worker``, the Temporal
dev server, Redis and the fake model (100 ms to first token, 5 ms a token, 20 tokens) each run as a
process of their own on this machine; this process is Slack: it signs and posts the events to the
adapter and serves the fake Web API the adapter answers into. Every turn is a one-tool turn (a model
round that calls ``lookup``, then a 20-token answer).

Two batches of --conversations conversations, --concurrency at a time: first a mention in a channel
(the bot opens a thread and answers there), then a reply without a mention in each of those threads
(the path a conversation takes on every later turn). A turn counts when its answer is in the thread
with the streamed reply stopped. Printed per batch: turns per second (target >= 30 for the replies),
latency from the event to the answer, CPU milliseconds per turn of each process, the Temporal
server's requests per turn by operation (from its own metrics) and what the adapter asked of them,
Slack Web API calls per turn by method, and the load average. Then the history of one conversation,
cut into its two turns (turn_cost.py): workflow tasks, activity tasks (the delivery activity on the
adapter's queue among them) and local activities, history events, and the Temporal Cloud actions each
turn costs (docs.temporal.io/cloud/actions).

The tool runs as a local activity (``DURABOT_LOCAL_TOOLS=lookup`` for the adapter and the worker, the
setting an operator gives a fast read-only tool); ``--regular-tools`` runs it as a regular activity
for comparison.
``--profile DIR`` records py-spy profiles of the adapter and the worker during each measured batch.

Each conversation is in a workspace of its own (one bot token answers them all): the adapter keeps to
Slack's per-workspace quotas (about 50 chat.update and 20 stream starts a minute), which would
otherwise bound the benchmark instead of durabot; the fake Web API's own limits are lifted. The
warm-up opens a conversation in every one of those workspaces first, so a measured mention is a new
conversation in a workspace the deployment knows (``--no-warm-workspaces``: each mention is its
workspace's first message, which recounts the workspace's budget counters from Temporal).

    .venv/bin/python bench/adapter_path.py
    .venv/bin/python bench/adapter_path.py --conversations 60 --concurrency 20
    .venv/bin/python bench/adapter_path.py --regular-tools --profile profiles/
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from common import ANSWER_TOKENS, TOKEN_DELAY, TOKENS, TTFT, pct  # noqa: E402
from procs import DurabotProc, FakeModelProcess, Profilers, clean_env, cpu, guarded, run_main  # noqa: E402
from turn_cost import cost, turns  # noqa: E402

from tests.fakes.slack_api import FakeSlack, SlackSender  # noqa: E402
from workers.servers import RedisServer, TemporalDevServer, free_port, wait_for_port  # noqa: E402

SECRET = "bench-signing-secret"
ANSWER = "".join(ANSWER_TOKENS).strip()
UNLIMITED = 10**9
# What the adapter asks the server (the worker asks none of these): to take a message in, and to
# follow a turn live. Everything else the server counts is polling and completing tasks.
TAKE_IN = ("ExecuteMultiOperation", "UpdateWorkflowExecution", "DescribeWorkflowExecution", "DescribeTaskQueue",
           "SignalWorkflowExecution", "SignalWithStartWorkflowExecution", "StartWorkflowExecution")
FOLLOW = ("QueryWorkflow", "PollWorkflowExecutionUpdate")


# ---------------------------------------------------------------------- server metrics
def _settled(port: int, wait: float = 0.5, limit: float = 10.0) -> Counter:
    """The server's request counts once they stop moving: it reports its metrics in batches, so a
    batch's last requests show up a moment after its last answer."""
    last = _server_requests(port)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(wait)
        now = _server_requests(port)
        moved = {op: n - last[op] for op, n in now.items() if n != last[op]}
        # Pollers waiting for the next task move on their own: only the client's calls must rest.
        if not any(op in moved for op in (*TAKE_IN, *FOLLOW, "RespondActivityTaskCompleted")):
            return now
        last = now
    return last


def _short(event: Any) -> str:
    """One history event as a word: its type, and an activity's name."""
    from temporalio.api.enums.v1 import EventType

    kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").lower()
    if event.HasField("activity_task_scheduled_event_attributes"):
        kind += f"({event.activity_task_scheduled_event_attributes.activity_type.name})"
    return kind


_REQUESTS = re.compile(r'^service_requests\{([^}]*)\} ([0-9.e+]+)$', re.M)


def _server_requests(port: int) -> Counter:
    """Requests the frontend took in the default namespace, by operation."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: Counter = Counter()
    for labels, value in _REQUESTS.findall(text):
        if 'namespace="default"' in labels and 'service_name="frontend"' in labels:
            op = re.search(r'operation="([^"]+)"', labels)
            if op:
                out[op.group(1)] += int(float(value))
    return out


class _ChannelFake(FakeSlack):
    """The fake Slack Web API, waking a turn's waiter only on calls into its channel: with 50 turns in
    flight, re-checking every waiter's thread on every call was most of this process's CPU, which
    shares the cores with what is measured."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._channel_events: dict[str, asyncio.Event] = {}

    async def _answer(self, method: str, params: dict, result: dict, status: int = 200,
                      headers: dict | None = None) -> Any:
        resp = await super()._answer(method, params, result, status, headers)
        event = self._channel_events.get(str(params.get("channel") or ""))
        if event is not None:
            event.set()
        return resp

    async def wait_in(self, channel: str, predicate: Any, timeout: float) -> None:
        event = self._channel_events.setdefault(channel, asyncio.Event())

        async def wait() -> None:
            while not predicate():
                await event.wait()
                event.clear()

        try:
            await asyncio.wait_for(wait(), timeout)
        finally:
            self._channel_events.pop(channel, None)


# ---------------------------------------------------------------------- the benchmark
class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="durabot-adapter-path-"))
        self.temporal = TemporalDevServer(log_file=str(self.tmp / "temporal.log"))
        self.redis = RedisServer()
        self.model = FakeModelProcess()
        self.slack = _ChannelFake(update_limit=UNLIMITED, post_rate=UNLIMITED, post_burst=UNLIMITED,
                               stream_tier2=UNLIMITED, stream_tier4=UNLIMITED)
        self.procs: list[DurabotProc] = []
        self.sender: SlackSender | None = None
        self.task_queue = f"bench-adapter-{uuid.uuid4().hex[:6]}"
        self.lost = 0

    def env(self, http_port: int) -> dict[str, str]:
        return clean_env(**{
            "TEMPORAL_ADDRESS": self.temporal.address, "DURABOT_TASK_QUEUE": self.task_queue,
            "OPENAI_BASE_URL": self.model.base_url, "OPENAI_API_KEY": "bench-key", "DURABOT_MODEL": "bench-model",
            "DURABOT_TOOLS": "bench.throughput_tools", "REDIS_URL": self.redis.url,
            "DURABOT_METRICS_PORT": "0", "DURABOT_LOG_LEVEL": "INFO", "DURABOT_LOCAL_WORKER": "0",
            "SLACK_BOT_TOKEN": self.slack.token, "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": self.slack.base_url, "DURABOT_HTTP_PORT": str(http_port),
            "DURABOT_DATABASE_URL": f"sqlite:///{self.tmp}/durabot.db",
            "DURABOT_SLACK_STREAMING": self.args.streaming,
            # The operator's knob for a fast read-only tool, in the environment every process shares
            # (as deploy/ gives it): the process that starts a conversation's run records in it which
            # tools run locally, so the adapter needs it as much as the worker.
            **({} if self.args.regular_tools else {"DURABOT_LOCAL_TOOLS": "lookup"}),
        })

    async def start(self) -> None:
        self.temporal.start()
        self.redis.start()
        self.model.start()
        await self.slack.start()
        self.metrics_port = self.temporal.metrics_port
        http_port = free_port()
        env = self.env(http_port)
        self.worker = DurabotProc(["worker"], env, self.tmp / "worker.log")
        self.procs.append(self.worker)
        await asyncio.to_thread(self.worker.wait_ready)
        self.adapter = DurabotProc(["slack", "--no-local-worker"], env, self.tmp / "adapter.log")
        self.procs.append(self.adapter)
        await asyncio.to_thread(wait_for_port, http_port, 60.0, self.adapter.proc)
        self.sender = SlackSender(f"http://127.0.0.1:{http_port}/slack/events", SECRET, self.slack.team)
        self.processes = {
            "adapter": psutil.Process(self.adapter.proc.pid), "worker": psutil.Process(self.worker.proc.pid),
            "temporal": psutil.Process(self.temporal.proc.pid),  # type: ignore[union-attr]
            "redis": psutil.Process(self.redis.proc.pid),  # type: ignore[union-attr]
            "fake model": psutil.Process(self.model.proc.pid),  # type: ignore[arg-type]
            "slack (this process)": psutil.Process(),
        }

    def redis_commands(self) -> Counter:
        """Commands Redis served so far, by name (its INFO commandstats)."""
        import redis

        client = redis.Redis.from_url(self.redis.url)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        return Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()})

    def _answers(self, channel: str, thread_ts: str) -> int:
        return sum(1 for m in self.slack.bot_messages(channel, thread_ts)
                   if ANSWER in (m.get("text") or "") and m.get("streaming_state") != "in_progress")

    def team(self, channel: str) -> str:
        """Each conversation in a workspace of its own: Slack's per-workspace quotas (about 50
        chat.update and 20 stream starts a minute, which the adapter keeps to) would otherwise bound
        the benchmark instead of durabot. Many workspaces with a few threads each is how a busy
        deployment meets them too. The workspace goes by the conversation's number, so the warm-up's
        conversation number i (channel CW...i) is in the same workspace as the measured one (CM...i)."""
        return f"T{channel[2:]}"

    async def _turn(self, event: dict, channel: str, thread_ts: str, answers: int) -> float:
        assert self.sender is not None
        body = json.loads(self.sender.event_body(event))
        body["team_id"] = body["authorizations"][0]["team_id"] = self.team(channel)
        start = time.perf_counter()
        status, text = await self.sender.post(json.dumps(body), "application/json")
        if status != 200:
            raise RuntimeError(f"the adapter answered {status}: {text[:200]}")
        await self.slack.wait_in(channel, lambda: self._answers(channel, thread_ts) >= answers,
                                 self.args.turn_timeout)
        return time.perf_counter() - start

    def mention(self, i: int, prefix: str) -> tuple[dict, str, str]:
        channel = f"C{prefix}{i:05d}"
        event = self.slack.add_user_message(channel, f"<@{self.slack.bot_user}> use a tool for {prefix}{i}")
        event["type"] = "app_mention"
        event.pop("channel_type", None)
        return event, channel, event["ts"]

    async def batch(self, name: str, events: list[tuple[dict, str, str]], answers: int) -> list[float]:
        sem = asyncio.Semaphore(self.args.concurrency)
        latencies: list[float] = []
        errors: list[str] = []

        async def one(ev: tuple[dict, str, str]) -> None:
            async with sem:
                try:
                    latencies.append(await self._turn(*ev, answers))
                except Exception as exc:  # counted as lost
                    errors.append(f"{ev[1]}: {type(exc).__name__}: {exc}")

        await asyncio.gather(*(one(ev) for ev in events))
        self.lost += len(errors)
        for e in errors[:5]:
            print(f"[{name}]   {e}")
        return latencies

    async def measured(self, name: str, events: list[tuple[dict, str, str]], answers: int) -> None:
        req0 = await asyncio.to_thread(_settled, self.metrics_port)
        redis0 = await asyncio.to_thread(self.redis_commands)
        cpu0 = {k: cpu(p) for k, p in self.processes.items()}
        calls0 = len(self.slack.calls)
        eager0 = self.temporal.counter("activity_eager_execution")
        profilers = None
        if self.args.profile:  # py-spy on the adapter (and the worker) while the batch runs
            profilers = await asyncio.to_thread(Profilers, Path(self.args.profile), {
                f"{name}-adapter": self.adapter.proc.pid, f"{name}-worker": self.worker.proc.pid})
        load0 = os.getloadavg()
        start = time.perf_counter()
        latencies = await self.batch(name, events, answers)
        wall = time.perf_counter() - start
        load1 = os.getloadavg()
        used = {k: cpu(p) - cpu0[k] for k, p in self.processes.items()}
        if profilers is not None:
            await asyncio.to_thread(profilers.stop)
        eager = self.temporal.counter("activity_eager_execution") - eager0
        requests = await asyncio.to_thread(_settled, self.metrics_port) - req0
        web = Counter(c.method for c in self.slack.calls[calls0:])
        redis_calls = await asyncio.to_thread(self.redis_commands) - redis0
        turns = len(latencies)
        per = max(turns, 1)
        target = "  (target >= 30)" if name == "replies" else ""
        print(f"--- {name}: {len(events)} conversations, {self.args.concurrency} at a time, one one-tool turn each")
        print(f"[{name}] turns per second        {turns / wall:7.1f}{target}   ({turns}/{len(events)} answered "
              f"in {wall:.2f} s; load average {load0[0]:.2f} before, {load1[0]:.2f} after)")
        if latencies:
            print(f"[{name}] event to answer          p50 {pct(latencies, 50) * 1000:.0f} ms  "
                  f"p95 {pct(latencies, 95) * 1000:.0f} ms  (model time alone {(2 * TTFT + (TOKENS - 1) * TOKEN_DELAY) * 1000:.0f} ms)")
        print(f"[{name}] CPU ms per turn          " + ", ".join(f"{k} {v / per * 1000:.1f}" for k, v in used.items())
              + f"; all {sum(used.values()) / per * 1000:.1f}")
        if requests["ListWorkflowExecutions"]:
            print(f"[{name}] (ListWorkflowExecutions: the budget counters' recount of a workspace new to Redis, once "
                  f"a workspace a day; here every measured mention is its workspace's first message)")
        take_in = sum(requests[op] for op in TAKE_IN)
        follow = sum(requests[op] for op in FOLLOW)
        print(f"[{name}] Temporal calls per turn  adapter: {take_in / per:.2f} to take the message in "
              f"({', '.join(f'{op} {requests[op] / per:.2f}' for op in TAKE_IN if requests[op])}), "
              f"{follow / per:.2f} to follow it live "
              f"({', '.join(f'{op} {requests[op] / per:.2f}' for op in FOLLOW if requests[op]) or 'none'})")
        print(f"[{name}] server requests per turn {sum(requests.values()) / per:.1f}: "
              + ", ".join(f"{op} {n / per:.2f}" for op, n in requests.most_common()))
        print(f"[{name}] Slack Web API per turn   {sum(web.values()) / per:.2f}: "
              + ", ".join(f"{m} {n / per:.2f}" for m, n in web.most_common()))
        print(f"[{name}] Redis commands per turn  {sum(redis_calls.values()) / per:.1f}: "
              + ", ".join(f"{c} {n / per:.2f}" for c, n in redis_calls.most_common(8)))
        print(f"[{name}] activities started eagerly {eager / per:.2f} per turn")
        for path in profilers.paths if profilers is not None else []:
            print(f"[{name}] profile (py-spy, collapsed stacks) {path}")
        self.last_requests, self.last_turns = requests, turns
        sys.stdout.flush()

    async def run(self) -> None:
        a = self.args
        # With --warm-workspaces (the default) every workspace had a conversation before the measured
        # one: a deployment meets a workspace new to it (its budget counters recounted from Temporal,
        # one visibility query) once a day, not once per conversation.
        count = max(a.warmup, a.conversations) if a.warm_workspaces else a.warmup
        warm = [self.mention(i, "W") for i in range(count)]
        await self.batch("warm-up", warm, 1)
        opened = [self.mention(i, "M") for i in range(a.conversations)]
        await self.measured("mentions", opened, 1)
        mention_requests = self.last_requests
        replies = []
        for event, channel, root in opened:
            reply = self.slack.add_user_message(channel, f"use a tool for {channel} again", thread_ts=root)
            replies.append((reply, channel, root))
        await self.measured("replies", replies, 2)
        await self.actions(opened[0][1], opened[0][2], mention_requests, self.last_requests, len(opened))

    async def actions(self, channel: str, root: str, mention_requests: Counter, reply_requests: Counter,
                      turns_measured: int) -> None:
        """What one two-turn conversation cost the server, turn by turn, read from its history
        (turn_cost.py): workflow tasks, activity tasks (the delivery on the adapter's queue among
        them), history events, and Temporal Cloud actions, plus the queries and heartbeats that leave
        no event (from the server's metrics)."""
        from temporalio.client import Client

        from agent_core.contract import DELIVER_ACTIVITY
        from agent_core.types import workflow_id_for
        from bots.slack.ids import ThreadRef

        client = await Client.connect(self.temporal.address)
        wid = workflow_id_for("durabot",  # the agent name the processes run with (DURABOT_* is cleared)
                              ThreadRef(self.team(channel), channel, root).conversation_id)
        try:
            history = await client.get_workflow_handle(wid).fetch_history()
        except Exception as exc:
            print(f"[history] {wid}: not read ({type(exc).__name__}: {exc})")
            return
        events = list(history.events)
        print(f"[history] one conversation, 2 turns: {len(events)} events, "
              f"{sum(e.ByteSize() for e in events) / 1024:.1f} KB")
        per_turn_queries = (mention_requests["QueryWorkflow"] + reply_requests["QueryWorkflow"]) / max(2 * turns_measured, 1)
        heartbeats = (mention_requests["RecordActivityTaskHeartbeat"] + reply_requests["RecordActivityTaskHeartbeat"]
                      + mention_requests["RecordActivityTaskHeartbeatById"]
                      + reply_requests["RecordActivityTaskHeartbeatById"]) / max(2 * turns_measured, 1)
        costs = [cost(t) for t in turns(events)]
        for label, c, t in zip(("mention (new conversation)", "reply"), costs, turns(events)):
            deliveries = sum(1 for e in t if e.HasField("activity_task_scheduled_event_attributes")
                             and e.activity_task_scheduled_event_attributes.activity_type.name == DELIVER_ACTIVITY)
            print(f"[turn cost] {label}: {c.line()}; of the activity tasks {deliveries} delivery on the "
                  f"adapter's queue")
            print(f"[turn cost]   by type: {c.kinds()}")
            if self.args.events:
                print("[turn cost]   events: " + " ".join(_short(e) for e in t))
        if len(costs) < 2:
            return
        reply = costs[1].actions
        total = reply + per_turn_queries + heartbeats
        print(f"[actions] per reply: {reply} from the history + {per_turn_queries:.2f} queries + {heartbeats:.2f} "
              f"heartbeats (server metrics) = {total:.1f}; a mention that starts its conversation: "
              f"{costs[0].actions} from the history")
        print(f"[actions] per 1,000 replies: {total * 1000:,.0f}")

    async def cleanup(self) -> None:
        if self.sender is not None:
            await self.sender.close()
        for p in reversed(self.procs):
            try:
                await asyncio.to_thread(p.stop)
            except Exception:
                pass
        await self.slack.stop()
        self.model.stop()
        self.redis.stop()
        self.temporal.stop()


async def main(args: argparse.Namespace) -> int:
    bench = Bench(args)

    async def body() -> int:
        await bench.start()
        print(f"durabot adapter path: Slack events over HTTP into 'durabot slack', one 'durabot worker', Temporal "
              f"dev server, Redis, fake model ({TTFT * 1000:.0f} ms to first token, {TOKENS} tokens at "
              f"{TOKEN_DELAY * 1000:.0f} ms), each a process on this machine ({os.cpu_count()} CPUs); "
              f"Slack streaming: {args.streaming}; tool lookup runs as a "
              f"{'regular' if args.regular_tools else 'local'} activity")
        sys.stdout.flush()
        await asyncio.wait_for(bench.run(), args.timeout)
        if bench.lost:
            print(f"{bench.lost} turns lost; logs of the adapter, worker and server: {bench.tmp}")
            return 1
        return 0

    return await guarded(bench, body, f"the benchmark took longer than {args.timeout:g} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--warm-workspaces", action=argparse.BooleanOptionalAction, default=True,
                        help="a warm-up conversation in every workspace first (--no-warm-workspaces: each "
                             "measured mention is its workspace's first message)")
    parser.add_argument("--streaming", choices=("native", "edits"), default="native")
    parser.add_argument("--turn-timeout", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--events", action="store_true", help="list each turn's history events")
    parser.add_argument("--regular-tools", action="store_true",
                        help="run the tool as a regular activity, not a local one (DURABOT_LOCAL_TOOLS)")
    parser.add_argument("--profile", metavar="DIR",
                        help="record py-spy profiles of the adapter and the worker during each batch into DIR")
    run_main(main, parser)
