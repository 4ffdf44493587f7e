"""The process handling the multi-process benchmarks share: the fake model in a process of its own,
``durabot`` commands as subprocesses, CPU readings, py-spy profiles, and the entry point.

Every child dies with the benchmark (PR_SET_PDEATHSIG), so an interrupted run leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import fixed_latency_script  # noqa: E402

from tests.fakes.openai_server import FakeOpenAI, last_user_text  # noqa: E402

# Variables of the benchmark's own shell that must not reach the processes it starts.
_OWN_PREFIXES = ("DURABOT_", "SLACK_", "DISCORD_", "OPENAI_", "TEMPORAL_", "REDIS_")


def die_with_parent() -> None:
    """In a child (preexec_fn): SIGTERM when the benchmark process dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without durabot's and the platforms' variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
    env.update({"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def cpu(p: psutil.Process | None) -> float:
    """User + system seconds of one process (0 when it is gone)."""
    if p is None:
        return 0.0
    try:
        t = p.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


def safe_process(p: Any) -> psutil.Process | None:
    """The psutil view of a ``Popen``/``multiprocessing.Process`` (None when there is none)."""
    try:
        return psutil.Process(p.pid) if p is not None else None
    except psutil.Error:
        return None


# ---------------------------------------------------------------------- the fake model
class _TimedFake(FakeOpenAI):
    """Records, per request, the conversation (from the user's text), the round and the time it took."""

    def __init__(self) -> None:
        super().__init__(fixed_latency_script)
        self.timings: list[tuple[str, str, float, str]] = []

    async def _completions(self, request: Any) -> Any:
        body = await request.json()  # aiohttp caches the body: the parent reads it again
        start = time.perf_counter()
        resp = await super()._completions(request)
        last = body["messages"][-1]
        self.timings.append((last_user_text(body), last["role"], time.perf_counter() - start,
                             last.get("content") or "" if last["role"] == "tool" else ""))
        return resp


def _fake_model_main(conn: Any, timed: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    die_with_parent()
    fake = _TimedFake().start() if timed else FakeOpenAI(fixed_latency_script).start()
    conn.send(fake.base_url)
    while True:
        if not conn.poll(1.0):
            continue
        cmd = conn.recv()
        if cmd == "timings" and isinstance(fake, _TimedFake):
            conn.send(fake.timings)
            fake.timings = []
        else:
            fake.stop()
            conn.send("stopped")
            return


class FakeModelProcess:
    """The fixed-latency fake model in a process of its own, so its CPU is its own. ``timed``: it
    records each request's conversation, round and duration (``timings``)."""

    def __init__(self, timed: bool = False) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_fake_model_main, args=(child, timed), daemon=True, name="fake-model")
        self.base_url = ""

    def start(self) -> FakeModelProcess:
        self.proc.start()
        if not self.conn.poll(30):
            raise RuntimeError("the fake model did not start in 30 s")
        self.base_url = self.conn.recv()
        return self

    def timings(self) -> list[tuple[str, str, float, str]]:
        self.conn.send("timings")
        if not self.conn.poll(30):
            raise RuntimeError("the fake model did not answer in 30 s")
        return self.conn.recv()

    def stop(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send("stop")
                self.conn.poll(5)
            except (OSError, EOFError):
                pass
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


# ---------------------------------------------------------------------- durabot processes
class DurabotProc:
    """A ``durabot`` command (``worker``, ``slack`` ...) in its own process, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "workers.cli", *args], env=env, cwd=str(ROOT),
                                     stdout=self._out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        self.ps = psutil.Process(self.proc.pid)

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

    def wait_ready(self, timeout: float = 60.0) -> None:
        """For a worker: until it polls its task queue."""
        self.wait_for_log("polling task queue", timeout)

    def cpu(self) -> float:
        return cpu(self.ps)

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # drains: nothing runs any more at this point
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._out.close()


# ---------------------------------------------------------------------- profiles
class Profilers:
    """py-spy on some processes while a batch runs (collapsed stacks, one file per process)."""

    def __init__(self, out: Path, targets: dict[str, int], rate: int = 200) -> None:
        spy = Path(sys.executable).parent / "py-spy"
        out.mkdir(parents=True, exist_ok=True)
        self.paths: list[Path] = []
        self._procs: list[subprocess.Popen] = []
        for name, pid in targets.items():
            path = out / f"{name}.txt"
            self.paths.append(path)
            self._procs.append(subprocess.Popen(
                [str(spy), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--nonblocking",
                 "-o", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent))
        time.sleep(0.5)  # let them attach

    def stop(self) -> None:
        for p in self._procs:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


# ---------------------------------------------------------------------- entry point
async def guarded(bench: Any, body: Callable[[], Coroutine[Any, Any, int]], too_long: str) -> int:
    """Run a benchmark's ``body`` to its exit code. Its processes are stopped whatever happens; their logs
    (``bench.tmp``) go when it succeeds and are named when it does not. ``too_long``: what timed out."""
    try:
        code = await body()
        if code == 0:
            shutil.rmtree(bench.tmp, ignore_errors=True)
        return code
    except asyncio.TimeoutError:
        print(f"error: {too_long}; logs in {bench.tmp}", file=sys.stderr)
        return 1
    except BaseException:
        print(f"logs of the benchmark's processes: {bench.tmp}", file=sys.stderr)
        raise
    finally:
        await asyncio.wait_for(bench.cleanup(), 60)


def _sigterm(*_: object) -> None:
    raise KeyboardInterrupt


def run_main(main: Callable[[argparse.Namespace], Coroutine[Any, Any, int]], parser: argparse.ArgumentParser) -> None:
    """Run a benchmark's ``main`` to its exit code; SIGTERM and ^C stop it cleanly (exit 130)."""
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        sys.exit(asyncio.run(main(parser.parse_args())))
    except KeyboardInterrupt:
        sys.exit(130)
