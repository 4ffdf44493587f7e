"""MCP fixtures: the fake MCP server over stdio (a subprocess per connection) and over HTTP (a thread)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent_core.mcp import MCPServer, close_mcp_connections
from tests.fakes.mcp_server import NOTES_ENV, SECRET_ENV, HttpMCPServer

ROOT = str(Path(__file__).resolve().parents[2])
SECRET = "s3cret-value-never-in-the-fingerprint"


@pytest.fixture(autouse=True)
async def _close_connections() -> AsyncIterator[None]:
    yield
    await close_mcp_connections()


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    return tmp_path / "notes.txt"


def note_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def stdio_server(notes: Path) -> Any:
    """A factory of MCPServer configs for the fake server over stdio."""

    def make(**kwargs: Any) -> MCPServer:
        kwargs.setdefault("name", "fake")
        env = {NOTES_ENV: str(notes), SECRET_ENV: SECRET, "PYTHONPATH": ROOT}
        return MCPServer(command=[sys.executable, "-m", "tests.fakes.mcp_server"], env=env, **kwargs)

    return make


@pytest.fixture(scope="session")
def http_mcp(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = HttpMCPServer(str(tmp_path_factory.mktemp("mcp-http") / "notes.txt")).start()
    yield server
    server.stop()


def program() -> str:
    return f"{os.path.basename(sys.executable)} -m tests.fakes.mcp_server"
