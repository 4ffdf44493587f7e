"""A real MCP server for tests, built with the ``mcp`` package's ``MCPServer``.

Tools: ``add`` (pure), ``write_note`` (appends a line to the file named by ``FAKE_MCP_NOTES``, so a test
can count side effects), ``keyed_note`` (the same, prefixed with the idempotency key the client sent in
``_meta``), ``erase_notes`` (empties the file; annotated ``destructiveHint: true``), ``fail`` (always
errors), ``crash`` (the process exits), ``whoami`` (echoes ``FAKE_MCP_SECRET`` back, to show that the env
reaches the server).

    python -m tests.fakes.mcp_server                 # stdio
    python -m tests.fakes.mcp_server --http PORT     # streamable HTTP on 127.0.0.1:PORT/mcp

``HttpMCPServer`` runs the HTTP flavour in a thread of the test process on a free port.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import time
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

NOTES_ENV = "FAKE_MCP_NOTES"
SECRET_ENV = "FAKE_MCP_SECRET"


def build_server(notes_path: str | None = None) -> MCPServer:
    server = MCPServer("fake-tools", log_level="WARNING")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def write_note(text: str) -> str:
        """Append a note to the notes file."""
        path = notes_path or os.environ[NOTES_ENV]
        with open(path, "a", encoding="utf-8") as f:
            f.write(text + "\n")
        return f"noted: {text}"

    @server.tool()
    def keyed_note(text: str, ctx: Context) -> str:
        """Append a note, prefixed with the call's idempotency key, to the notes file."""
        key = (ctx.request_context.meta or {}).get("durabot/idempotency_key", "no key")
        path = notes_path or os.environ[NOTES_ENV]
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{key} {text}\n")
        return key

    @server.tool(annotations=ToolAnnotations(destructive_hint=True))
    def erase_notes() -> str:
        """Erase every note."""
        open(notes_path or os.environ[NOTES_ENV], "w").close()
        return "erased"

    @server.tool()
    def fail(reason: str = "disk on fire") -> str:
        """Always fails."""
        raise ToolError(f"cannot comply: {reason}")

    @server.tool()
    def crash() -> str:
        """Kill the server process (a stdio server dies; tests check the client reconnects)."""
        os._exit(3)

    @server.tool()
    def pid() -> int:
        """The server's process id."""
        return os.getpid()

    @server.tool()
    def whoami(ctx: Context) -> str:
        """Say which secret the server was given: its env (stdio) or the Authorization header (HTTP)."""
        headers = ctx.headers
        if headers is not None:
            return headers.get("authorization", "no header")
        return os.environ.get(SECRET_ENV, "no secret")

    return server


class HttpMCPServer:
    """The fake server over streamable HTTP, in a thread, on a port the OS picks."""

    def __init__(self, notes_path: str | None = None) -> None:
        self.notes_path = notes_path
        self.port = 0
        self._sock: socket.socket | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> HttpMCPServer:
        import uvicorn

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        app = build_server(self.notes_path).streamable_http_app(host="127.0.0.1")
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[self._sock])), name="fake-mcp", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:  # uvicorn has no ready callback: poll its flag
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake MCP server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(5)
        if self._sock is not None:
            self._sock.close()


def main(argv: list[str]) -> None:
    server = build_server()
    if len(argv) == 2 and argv[0] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(argv[1]))
    else:
        server.run()


if __name__ == "__main__":
    main(sys.argv[1:])
