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
Slack Web API calls per turn by method, and the load average. Then the history of one conversation
and the Temporal Cloud actions per turn it implies (docs.temporal.io/cloud/actions).

Each conversation is in a workspace of its own (one bot token answers them all): the adapter keeps to
Slack's per-workspace quotas (about 50 chat.update and 20 stream starts a minute), which would
otherwise bound the benchmark instead of durabot; the fake Web API's own limits are lifted.

    .venv/bin/python bench/adapter_path.py
    .venv/bin/python bench/adapter_path.py --conversations 60 --concurrency 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
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
from common import ANSWER_TOKENS, TOKEN_DELAY, TOKENS, TTFT, fixed_latency_script, pct  # noqa: E402

from tests.fakes.openai_server import FakeOpenAI  # noqa: E402
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


# ---------------------------------------------------------------------- processes
def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _fake_model_main(conn: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    _die_with_parent()
    fake = FakeOpenAI(fixed_latency_script).start()
    conn.send(fake.base_url)
    conn.recv()  # anything: stop
    fake.stop()


class FakeModel:
    """The fake model in a process of its own, so its CPU is its own."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_fake_model_main, args=(child,), daemon=True, name="fake-model")
        self.base_url = ""

    def start(self) -> "FakeModel":
        self.proc.start()
        if not self.conn.poll(30):
            raise RuntimeError("the fake model did not start in 30 s")
        self.base_url = self.conn.recv()
        return self

    def stop(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send("stop")
            except (OSError, EOFError):
                pass
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


class Proc:
    """A ``durabot`` command in its own process, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "workers.cli", *args], env=env, cwd=str(ROOT),
                                     stdout=self._out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    def wait_for_log(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.log.name}: exited ({self.proc.returncode}):\n"
                                   + self.log.read_text(errors="replace")[-3000:])
            time.sleep(0.05)
        raise RuntimeError(f"{self.log.name}: no {text!r} after {timeout:g}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._out.close()


def _cpu(p: psutil.Process | None) -> float:
    """User + system seconds of one process."""
    if p is None:
        return 0.0
    try:
        t = p.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


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


def _metrics_port(server: TemporalDevServer) -> int:
    """The dev server serves Prometheus metrics on a port of its choosing: find it among its own."""
    proc = psutil.Process(server.proc.pid)  # type: ignore[union-attr]
    for q in [proc, *proc.children(recursive=True)]:
        for conn in q.net_connections(kind="tcp"):
            if conn.status != psutil.CONN_LISTEN or conn.laddr.port == server.port:
                continue
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{conn.laddr.port}/metrics", timeout=2) as r:
                    if b"service_requests" in r.read():
                        return conn.laddr.port
            except OSError:
                continue
    raise RuntimeError("the Temporal dev server serves no metrics endpoint")


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


# ---------------------------------------------------------------------- the benchmark
class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="durabot-adapter-path-"))
        self.temporal = TemporalDevServer(log_file=str(self.tmp / "temporal.log"))
        self.redis = RedisServer()
        self.model = FakeModel()
        self.slack = FakeSlack(update_limit=UNLIMITED, post_rate=UNLIMITED, post_burst=UNLIMITED,
                               stream_tier2=UNLIMITED, stream_tier4=UNLIMITED)
        self.procs: list[Proc] = []
        self.sender: SlackSender | None = None
        self.task_queue = f"bench-adapter-{uuid.uuid4().hex[:6]}"
        self.lost = 0

    def env(self, http_port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DURABOT_", "SLACK_", "DISCORD_", "OPENAI_", "TEMPORAL_", "REDIS_"))}
        env.update({
            "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
            "TEMPORAL_ADDRESS": self.temporal.address, "DURABOT_TASK_QUEUE": self.task_queue,
            "OPENAI_BASE_URL": self.model.base_url, "OPENAI_API_KEY": "bench-key", "DURABOT_MODEL": "bench-model",
            "DURABOT_TOOLS": "bench.throughput_tools", "REDIS_URL": self.redis.url,
            "DURABOT_METRICS_PORT": "0", "DURABOT_LOG_LEVEL": "INFO", "DURABOT_LOCAL_WORKER": "0",
            "SLACK_BOT_TOKEN": self.slack.token, "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": self.slack.base_url, "DURABOT_HTTP_PORT": str(http_port),
            "DURABOT_DATABASE_URL": f"sqlite:///{self.tmp}/durabot.db",
            "DURABOT_SLACK_STREAMING": self.args.streaming,
        })
        return env

    async def start(self) -> None:
        self.temporal.start()
        self.redis.start()
        self.model.start()
        await self.slack.start()
        self.metrics_port = _metrics_port(self.temporal)
        http_port = free_port()
        env = self.env(http_port)
        self.worker = Proc(["worker"], env, self.tmp / "worker.log")
        self.procs.append(self.worker)
        await asyncio.to_thread(self.worker.wait_for_log, "polling task queue")
        self.adapter = Proc(["slack", "--no-local-worker"], env, self.tmp / "adapter.log")
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

    def _answers(self, channel: str, thread_ts: str) -> int:
        return sum(1 for m in self.slack.bot_messages(channel, thread_ts)
                   if ANSWER in (m.get("text") or "") and m.get("streaming_state") != "in_progress")

    def team(self, channel: str) -> str:
        """Each conversation in a workspace of its own: Slack's per-workspace quotas (about 50
        chat.update and 20 stream starts a minute, which the adapter keeps to) would otherwise bound
        the benchmark instead of durabot. Many workspaces with a few threads each is how a busy
        deployment meets them too."""
        return f"T{channel[1:]}"

    async def _turn(self, event: dict, channel: str, thread_ts: str, answers: int) -> float:
        assert self.sender is not None
        body = json.loads(self.sender.event_body(event))
        body["team_id"] = body["authorizations"][0]["team_id"] = self.team(channel)
        start = time.perf_counter()
        status, text = await self.sender.post(json.dumps(body), "application/json")
        if status != 200:
            raise RuntimeError(f"the adapter answered {status}: {text[:200]}")
        await self.slack.wait_for(lambda: self._answers(channel, thread_ts) >= answers, self.args.turn_timeout)
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
        cpu0 = {k: _cpu(p) for k, p in self.processes.items()}
        calls0 = len(self.slack.calls)
        load0 = os.getloadavg()
        start = time.perf_counter()
        latencies = await self.batch(name, events, answers)
        wall = time.perf_counter() - start
        load1 = os.getloadavg()
        cpu = {k: _cpu(p) - cpu0[k] for k, p in self.processes.items()}
        requests = await asyncio.to_thread(_settled, self.metrics_port) - req0
        web = Counter(c.method for c in self.slack.calls[calls0:])
        turns = len(latencies)
        per = max(turns, 1)
        target = "  (target >= 30)" if name == "replies" else ""
        print(f"--- {name}: {len(events)} conversations, {self.args.concurrency} at a time, one one-tool turn each")
        print(f"[{name}] turns per second        {turns / wall:7.1f}{target}   ({turns}/{len(events)} answered "
              f"in {wall:.2f} s; load average {load0[0]:.2f} before, {load1[0]:.2f} after)")
        if latencies:
            print(f"[{name}] event to answer          p50 {pct(latencies, 50) * 1000:.0f} ms  "
                  f"p95 {pct(latencies, 95) * 1000:.0f} ms  (model time alone {(2 * TTFT + (TOKENS - 1) * TOKEN_DELAY) * 1000:.0f} ms)")
        print(f"[{name}] CPU ms per turn          " + ", ".join(f"{k} {v / per * 1000:.1f}" for k, v in cpu.items())
              + f"; all {sum(cpu.values()) / per * 1000:.1f}")
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
        self.last_requests, self.last_turns = requests, turns
        sys.stdout.flush()

    async def run(self) -> None:
        a = self.args
        warm = [self.mention(i, "W") for i in range(a.warmup)]
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
                      turns: int) -> None:
        """The history of one two-turn conversation, and its Temporal Cloud actions per turn."""
        from temporalio.api.enums.v1 import EventType
        from temporalio.client import Client

        from bots.slack.ids import ThreadRef
        from agent_core.types import workflow_id_for

        client = await Client.connect(self.temporal.address)
        wid = workflow_id_for("durabot",  # the agent name the processes run with (DURABOT_* is cleared)
                              ThreadRef(self.team(channel), channel, root).conversation_id)
        try:
            history = await client.get_workflow_handle(wid).fetch_history()
        except Exception as exc:
            print(f"[history] {wid}: not read ({type(exc).__name__}: {exc})")
            return
        kinds = Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_").lower() for e in history.events)
        size = sum(e.ByteSize() for e in history.events)
        print(f"[history] one conversation, 2 turns: {len(history.events)} events, {size / 1024:.1f} KB: "
              + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
        # Billable by the published definition: a workflow start, each activity attempt, each timer,
        # each search-attribute upsert, each signal, each update taken by the worker, each query
        # answered by a worker, each heartbeat sent to the server; local activities of one workflow
        # task count once; patch (version) markers are not actions.
        la_tasks = set()
        task = 0
        for e in history.events:
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                task += 1
            if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED and "local_activity" in e.marker_recorded_event_attributes.marker_name:
                la_tasks.add(task)
        attempts = sum(max(1, e.activity_task_started_event_attributes.attempt) for e in history.events
                       if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
        in_history = {
            "workflow started": kinds["workflow_execution_started"] + kinds["workflow_execution_continued_as_new"],
            "activity attempts": attempts, "timers": kinds["timer_started"],
            "search attribute upserts": kinds["upsert_workflow_search_attributes"],
            "signals": kinds["workflow_execution_signaled"], "updates": kinds["workflow_execution_update_accepted"],
            "local activity tasks": len(la_tasks),
        }
        per_turn_queries = (mention_requests["QueryWorkflow"] + reply_requests["QueryWorkflow"]) / max(2 * turns, 1)
        heartbeats = (mention_requests["RecordActivityTaskHeartbeat"] + reply_requests["RecordActivityTaskHeartbeat"]
                      + mention_requests["RecordActivityTaskHeartbeatById"]) / max(2 * turns, 1)
        total = sum(in_history.values())
        print("[actions] in the history (2 turns): " + ", ".join(f"{k} {v}" for k, v in in_history.items() if v)
              + f"; {total} in all")
        per_turn = (total - in_history["workflow started"]) / 2
        print(f"[actions] per turn: {per_turn:.1f} from the history + {per_turn_queries:.2f} queries "
              f"+ {heartbeats:.2f} heartbeats (server metrics) = {per_turn + per_turn_queries + heartbeats:.1f}; "
              f"+1 when the turn starts its conversation's run")
        print(f"[actions] per 1,000 turns: {(per_turn + per_turn_queries + heartbeats) * 1000:,.0f} "
              f"(+1,000 per 1,000 conversations started or restarted after an idle end)")

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
    try:
        await bench.start()
        print(f"durabot adapter path: Slack events over HTTP into 'durabot slack', one 'durabot worker', Temporal "
              f"dev server, Redis, fake model ({TTFT * 1000:.0f} ms to first token, {TOKENS} tokens at "
              f"{TOKEN_DELAY * 1000:.0f} ms), each a process on this machine ({os.cpu_count()} CPUs); "
              f"Slack streaming: {args.streaming}")
        sys.stdout.flush()
        await asyncio.wait_for(bench.run(), args.timeout)
        if bench.lost:
            print(f"{bench.lost} turns lost; logs of the adapter, worker and server: {bench.tmp}")
            return 1
        shutil.rmtree(bench.tmp, ignore_errors=True)
        return 0
    except asyncio.TimeoutError:
        print(f"error: the benchmark took longer than {args.timeout:g} s; logs in {bench.tmp}", file=sys.stderr)
        return 1
    except BaseException:
        print(f"logs of the adapter, worker and server: {bench.tmp}", file=sys.stderr)
        raise
    finally:
        await asyncio.wait_for(bench.cleanup(), 60)


def _sigterm(*_: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--streaming", choices=("native", "edits"), default="native")
    parser.add_argument("--turn-timeout", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        sys.exit(asyncio.run(main(parser.parse_args())))
    except KeyboardInterrupt:
        sys.exit(130)
