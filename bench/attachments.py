"""Files in a turn: worker memory and time to first token with a 10 MB attachment, and history bytes
per turn with attachments against without.

Starts a Temporal dev server, Redis, the fixed-latency fake model (100 ms to first token, 5 ms a
token, 20 tokens) and one ``durabot worker`` process; this process is the client. The files go
through a local blob store shared by both.

1. Time to first token (client sends -> first token event) and the worker's resident memory (VmRSS
   before, VmHWM peak after) for: a plain turn, a turn with a 10 MB image (sent to the model as a
   ~13 MB base64 data URI), a turn with a 10 MB log (the model reads its first 50,000 characters).
2. History bytes added per turn over turns 6..25 of two conversations: plain, and each message with a
   100 KB CSV attached. Target: the same within 10 %.

    python bench/attachments.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import ANSWER_TOKENS, TOKEN_DELAY, TTFT, FakeOpenAI, Reply  # noqa: E402

from agent_core import Agent  # noqa: E402
from agent_core.blobs import LocalBlobStore  # noqa: E402
from workers.servers import RedisServer, TemporalDevServer  # noqa: E402

MB = 1024 * 1024
REPEATS = 5
HISTORY_TURNS = 25
HISTORY_FROM = 6


def script(body: dict) -> Reply:
    return Reply(tokens=ANSWER_TOKENS, ttft=TTFT, token_delay=TOKEN_DELAY)


def big_png(size: int) -> bytes:
    """A valid PNG header followed by ``size`` bytes of incompressible data in an ancillary chunk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixel = b"\x00\x10\x20\x30"  # one row: filter byte and one RGB pixel
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"raNd", os.urandom(size)) + chunk(b"IDAT", zlib.compress(pixel)) + chunk(b"IEND", b""))


def memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def reset_peak(pid: int) -> None:
    try:  # Linux 4.0+: writing 5 resets VmHWM to the current RSS
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


async def first_token(agent: Agent, conv: str, text: str, attachments: list) -> float:
    start = time.perf_counter()
    handle = await agent.run_async(text, conv, attachments=attachments)
    ttft = None
    async for ev in handle.events():
        if ev.kind == "token" and ttft is None:
            ttft = time.perf_counter() - start
    await handle.result(timeout=120)
    assert ttft is not None, "no token event"
    return ttft


async def history_bytes(agent: Agent, conv: str) -> int:
    history = await agent.handle(conv).fetch_history()
    return sum(e.ByteSize() for e in history.events)


async def per_turn(agent: Agent, conv: str, attach: bool) -> list[int]:
    sizes = []
    for turn in range(1, HISTORY_TURNS + 1):
        before = await history_bytes(agent, conv) if turn > 1 else 0
        refs = []
        if attach:
            rows = "".join(f"{turn},{i},{i * 7 % 13},value-{i}\n" for i in range(5_000))
            refs = [await agent.attach(("turn,row,n,label\n" + rows).encode()[:100_000], f"data-{turn}.csv")]
        await agent.run(f"message number {turn}", conv, attachments=refs)
        if turn >= HISTORY_FROM:
            sizes.append(await history_bytes(agent, conv) - before)
    return sizes


async def main() -> None:
    temporal = TemporalDevServer().start()
    redis = RedisServer().start()
    fake = FakeOpenAI(script).start()
    blob_dir = tempfile.mkdtemp(prefix="durabot-bench-blobs-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DURABOT_", "SLACK_", "DISCORD_", "OPENAI_"))}
    env.update({
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "TEMPORAL_ADDRESS": temporal.address,
        "DURABOT_TASK_QUEUE": "bench-files", "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "x",
        "DURABOT_MODEL": "bench", "DURABOT_AGENT_NAME": "bench", "REDIS_URL": redis.url,
        "DURABOT_BLOB_URL": blob_dir, "DURABOT_METRICS_PORT": "0", "DURABOT_TOOLS": "workers.example_tools",
        "DURABOT_LOG_LEVEL": "INFO",
    })
    log = open(Path(blob_dir) / "worker.log", "wb")
    worker = subprocess.Popen([sys.executable, "-m", "workers.cli", "worker"], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        from workers.app import build_agent
        from workers.settings import Settings

        deadline = time.monotonic() + 60
        while b"polling task queue" not in (Path(blob_dir) / "worker.log").read_bytes():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the worker did not start:\n" + (Path(blob_dir) / "worker.log").read_text())
            await asyncio.sleep(0.1)
        agent = build_agent(Settings.load(env=env, dotenv=None), local_worker=False)
        assert isinstance(agent.blobs, LocalBlobStore)
        async with agent:
            await agent.run("warm up", "warm")  # waits for the worker to poll
            image = await agent.attach(big_png(10 * MB), "photo.png")
            log_file = await agent.attach((b"2026-12-03 INFO request served in 12 ms\n" * (10 * MB // 41)), "app.log")
            cases = {"plain turn": [], "10 MB image": [image], "10 MB log": [log_file]}
            print(f"worker pid {worker.pid}; fake model: {TTFT * 1000:.0f} ms to first token")
            print(f"{'turn':<14} {'first token p50':>16} {'max':>9} {'worker RSS before':>18} {'peak':>8}")
            for name, refs in cases.items():
                reset_peak(worker.pid)
                rss, _ = memory(worker.pid)
                times = [await first_token(agent, f"ttft-{name}-{i}", "describe this", refs) for i in range(REPEATS)]
                _, peak = memory(worker.pid)
                print(f"{name:<14} {statistics.median(times) * 1000:>13.1f} ms {max(times) * 1000:>6.1f} ms "
                      f"{rss:>15.1f} MB {peak:>5.1f} MB")
            plain = await per_turn(agent, "history-plain", attach=False)
            files = await per_turn(agent, "history-files", attach=True)
            p, f = statistics.mean(plain), statistics.mean(files)
            print(f"history bytes per turn (turns {HISTORY_FROM}..{HISTORY_TURNS}): plain {p:.0f}, "
                  f"with a 100 KB CSV each {f:.0f}: {100 * (f - p) / p:+.1f} % (target within 10 %)")
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
        fake.stop()
        redis.stop()
        temporal.stop()


if __name__ == "__main__":
    asyncio.run(main())
