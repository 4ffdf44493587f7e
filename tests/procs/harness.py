"""Start and stop real ``durabot`` processes for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from workers.settings import Settings


def worker_env(temporal_address: str, task_queue: str, openai_url: str, tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DURABOT_", "SLACK_", "DISCORD_", "OPENAI_"))}
    env.update({
        "PYTHONPATH": os.getcwd(), "TEMPORAL_ADDRESS": temporal_address, "DURABOT_TASK_QUEUE": task_queue,
        "OPENAI_BASE_URL": openai_url, "OPENAI_API_KEY": "test-key", "DURABOT_MODEL": "fake-model",
        "DURABOT_TOOLS": "tests.procs.journal_tools", "JOURNAL_PATH": str(tmp / "journal.txt"),
        "RELEASE_PATH": str(tmp / "release"), "PYTHONUNBUFFERED": "1", "DURABOT_METRICS_PORT": "0",
    })
    env.update(extra)
    return env


def settings_for(env: dict[str, str]) -> Settings:
    return Settings.load(env=env, dotenv=None)


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path, module: str = "workers.cli") -> None:
        self.log = log
        self._out = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", module, *args], env=env,
                                     stdout=self._out, stderr=subprocess.STDOUT, cwd=os.getcwd())

    def wait_for(self, text: str, timeout: float = 30) -> None:
        wait_until(lambda: text in self.log.read_text(errors="replace"), timeout,
                   f"{text!r} in {self.log.name}", self)

    def kill(self, sig: int = signal.SIGKILL) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(60)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()


def wait_until(cond: Callable[[], bool], timeout: float, what: str, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if proc is not None and proc.proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.proc.returncode}) before {what}:\n"
                                 + proc.log.read_text(errors="replace")[-3000:])
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def journal(tmp: Path) -> list[str]:
    path = tmp / "journal.txt"
    return path.read_text().splitlines() if path.exists() else []
