"""Tools from MCP servers, as ordinary ``Tool`` objects.

    tools = await load_mcp_tools([MCPServer("files", command=["files-mcp", "--root", "/data"])])
    agent = Agent("assistant", tools=[*local_tools, *tools])

``load_mcp_tools`` lists each server's tools once, at start-up, outside any workflow. Each tool then runs
like a local one: inside the ``run_tool`` activity, behind the same approval gate, and listed in the
configuration fingerprint (transport kind, program or host and path, tool schema; never env or headers).
Calls share one connection per server and event loop; a connection that fails is dropped and the next
call opens a new one. ``close_mcp_connections()`` closes them (worker shutdown, tests).

Each call carries the tool call's idempotency key in the request's ``_meta`` under
``durabot/idempotency_key`` (the same on every retry), so a server can make its side effects
idempotent. A tool whose annotations declare ``destructiveHint: true`` needs approval unless its
server is trusted with them (``trust_destructive=True``, ``@trust-destructive`` in the environment).

``parse_mcp_env`` reads the ``DURABOT_MCP_SERVERS`` grammar; markers follow the spec in any order::

    name=stdio:COMMAND ARGS...[@approve[=tool,tool]][@trust-destructive] ; name=http(s)://host/path[...] ; ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import tempfile
import weakref
from collections.abc import AsyncIterator
from typing import IO, Any

from .errors import AgentRuntimeError, UserError
from .mcp_config import MCPServer, parse_mcp_env
from .redaction import redact_urls
from .tools import Tool, ToolContext

log = logging.getLogger(__name__)

__all__ = ["IDEMPOTENCY_META_KEY", "MCPServer", "MCPToolError", "close_mcp_connections", "load_mcp_tools",
           "parse_mcp_env"]

# A `_meta` key of our own namespace (`prefix/name`, as the MCP spec asks for non-protocol keys).
IDEMPOTENCY_META_KEY = "durabot/idempotency_key"

_STDERR_TAIL = 1500  # characters of a stdio server's stderr quoted in an error


class MCPToolError(AgentRuntimeError):
    """An MCP tool answered with an error; the message is the server's text (the model sees it)."""


class MCPTool(Tool):
    """A tool of an MCP server: the schema is the server's ``inputSchema``, a call goes to the server."""

    def __init__(self, server: MCPServer, remote: Any) -> None:
        self.server = server
        self.remote_name: str = remote.name
        schema = dict(remote.input_schema or {})
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        schema.setdefault("required", [])
        schema.pop("title", None)  # the server's class name of the arguments; tells the model nothing
        self._input_schema = schema
        self.destructive = _declares_destructive(remote)
        name = server.tool_name(remote.name)

        async def call(**arguments: Any) -> str:
            return await _call_tool(server, self.remote_name, arguments)

        super().__init__(
            call, name=name, description=remote.description or remote.title or remote.name,
            requires_approval=server.wants_approval(remote.name, name, self.destructive),
        )

    def _schema(self) -> dict[str, Any]:
        return self._input_schema

    async def invoke(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        return await _call_tool(self.server, self.remote_name, args, idempotency_key=ctx.idempotency_key)

    def __repr__(self) -> str:
        return (f"MCPTool({self.name!r}, server={self.server.name!r}, "
                f"requires_approval={self.requires_approval})")

    def signature_text(self) -> str:
        return json.dumps({
            "d": self.description, "p": self.parameters, "a": self.requires_approval,
            "mcp": {"transport": self.server.transport, "where": self.server.where(),
                    "tool": self.remote_name, "destructive": self.destructive,
                    "trust_destructive": self.server.trust_destructive},
        }, sort_keys=True)


def _declares_destructive(remote: Any) -> bool:
    """Only an explicit ``destructiveHint: true`` counts (a read-only tool cannot be destructive)."""
    hints = getattr(remote, "annotations", None)
    return bool(hints is not None and hints.destructive_hint is True and hints.read_only_hint is not True)


# ---------------------------------------------------------------------------------------------- loading
async def load_mcp_tools(servers: list[MCPServer]) -> list[Tool]:
    """Connect to each server, list its tools and return them as ``Tool`` objects (call at start-up)."""
    found: list[Tool] = []
    owner: dict[str, str] = {}
    for server in servers:
        try:
            async with _session(server) as client:
                listed = await _list_all(client)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise UserError(_load_failure(server, exc)) from None
        names = {t.name for t in listed}
        if not isinstance(server.requires_approval, bool):
            valid = names | {server.tool_name(n) for n in names}
            unknown = [n for n in server.requires_approval if n not in valid]
            if unknown:
                raise UserError(
                    f"MCP server {server.name!r}: requires_approval names unknown tool(s) "
                    f"{', '.join(map(repr, unknown))}; it offers {', '.join(sorted(names)) or 'none'}"
                )
        for remote in listed:
            t = MCPTool(server, remote)
            if t.name in owner:
                raise UserError(
                    f"MCP tool name {t.name!r} is taken twice (servers {owner[t.name]!r} and {server.name!r}); "
                    "give the servers distinct names or prefixes"
                )
            owner[t.name] = server.name
            found.append(t)
        log.info("MCP server %r (%s %s): %d tool(s)", server.name, server.transport, server.where(), len(listed))
    return found


async def _list_all(client: Any) -> list[Any]:
    tools: list[Any] = []
    cursor: str | None = None
    for _ in range(100):  # a server whose pages never end must not hang the start-up
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _load_failure(server: MCPServer, exc: BaseException) -> str:
    root = _root_cause(exc)
    stderr = getattr(exc, "stderr_tail", "")
    what = f"MCP server {server.name!r} ({server.transport} {server.where()})"
    if isinstance(root, TimeoutError):
        fix = f"it did not answer within {server.timeout:g} s; check it starts quickly or raise timeout"
    elif server.transport == "stdio" and isinstance(root, (FileNotFoundError, PermissionError)):
        fix = (f"cannot start program {server.command[0]!r} ({root}); install it or give its full path "  # type: ignore[index]
               "(the server inherits only a minimal environment plus its env=...)")
    elif server.transport == "stdio":
        fix = f"it exited or did not speak MCP on stdin/stdout ({_describe(root)})"
    else:
        fix = (f"cannot reach it ({_describe(root)}); check the server runs, the URL and, if it needs "
               "them, the headers")
    tail = f"\nIts stderr ends with:\n{stderr.strip()}" if stderr.strip() else ""
    return f"{what}: {fix}.{tail}"


# ---------------------------------------------------------------------------------------------- sessions
@contextlib.asynccontextmanager
async def _session(server: MCPServer) -> AsyncIterator[Any]:
    """One connected ``mcp.Client``; a stdio server's stderr is kept aside and quoted on failure."""
    from mcp import Client

    errlog: IO[str] | None = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") \
        if server.command is not None else None
    try:
        async with contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout(server.timeout):  # bounds the start and the handshake
                client = await stack.enter_async_context(
                    Client(_transport(server, errlog), read_timeout_seconds=server.timeout, cache=None)
                )
            yield client
    except BaseException as exc:
        if errlog is not None and not isinstance(exc, asyncio.CancelledError):
            exc.stderr_tail = _tail(errlog)  # type: ignore[attr-defined]
        raise
    finally:
        if errlog is not None:
            errlog.close()


def _transport(server: MCPServer, errlog: IO[str] | None) -> Any:
    if server.command is not None:
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(command=server.command[0], args=server.command[1:], env=server.env)
        return stdio_client(params, errlog=errlog or sys.stderr)
    return _http_transport(server)


@contextlib.asynccontextmanager
async def _http_transport(server: MCPServer) -> AsyncIterator[Any]:
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http = create_mcp_http_client(headers=server.headers)
    async with http, streamable_http_client(server.url, http_client=http) as streams:  # type: ignore[arg-type]
        yield streams


def _tail(f: IO[str]) -> str:
    try:
        f.flush()
        f.seek(0)
        return f.read()[-_STDERR_TAIL:]
    except (OSError, ValueError):
        return ""


class _Connection:
    """A session held open by a task of its own (anyio scopes must close in the task that opened them)."""

    def __init__(self, server: MCPServer) -> None:
        self.server = server
        self.client: Any = None
        self.error: BaseException | None = None
        self.used = False
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._task = asyncio.create_task(self._hold(), name=f"mcp-{server.name}")

    async def _hold(self) -> None:
        try:
            async with _session(self.server) as client:
                self.client = client
                self._ready.set()
                await self._closing.wait()
        except BaseException as exc:  # the caller waiting on _ready gets it; later callers reconnect
            self.error = exc
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self.client = None
            self._ready.set()

    async def ready(self) -> Any:
        await self._ready.wait()
        if self.client is None:
            raise self.error or ConnectionError("the connection closed")
        return self.client

    @property
    def alive(self) -> bool:
        return not self._task.done() and not self._closing.is_set()

    async def close(self) -> None:
        self._closing.set()
        with contextlib.suppress(BaseException):
            await self._task


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _Connection]] = weakref.WeakKeyDictionary()


async def _connection(server: MCPServer) -> _Connection:
    pool = _pools.setdefault(asyncio.get_running_loop(), {})
    conn = pool.get(id(server))
    if conn is None or not conn.alive or (conn.server is not server):
        conn = pool[id(server)] = _Connection(server)
    return conn


async def close_mcp_connections() -> None:
    """Close this event loop's MCP connections (stdio servers exit). Calls reconnect if made later."""
    pool = _pools.pop(asyncio.get_running_loop(), {})
    await asyncio.gather(*(c.close() for c in pool.values()))


async def _client(server: MCPServer) -> tuple[_Connection, Any]:
    """A connected client; a pooled connection is probed first and replaced if its server went away."""
    conn = await _connection(server)
    client = await conn.ready()
    if conn.used:
        try:
            async with asyncio.timeout(min(server.timeout, 10)):
                await client.list_tools(cache_mode="refresh")  # ping is gone from the 2026 protocol
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # nothing was sent to the tool yet: reconnecting is safe
            log.info("MCP server %r: pooled connection lost (%s); reconnecting", server.name, _describe(exc))
            await conn.close()
            conn = await _connection(server)
            client = await conn.ready()
    conn.used = True
    return conn, client


async def _call_tool(server: MCPServer, name: str, arguments: dict[str, Any],
                     idempotency_key: str | None = None) -> str:
    conn: _Connection | None = None
    meta = {IDEMPOTENCY_META_KEY: idempotency_key} if idempotency_key else None
    try:
        conn, client = await _client(server)
        result = await client.call_tool(name, arguments, meta=meta)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if conn is not None:
            await conn.close()  # the next call opens a new connection
        detail = _describe(_root_cause(exc))
        tail = getattr(exc, "stderr_tail", "") or (getattr(conn.error, "stderr_tail", "") if conn else "")
        log.warning("MCP server %r: call of %r failed: %s", server.name, name, detail)
        raise AgentRuntimeError(
            f"MCP server {server.name!r} ({server.transport} {server.where()}) failed during the call: {detail}"
            + (f"; its stderr ends with: {tail.strip()[-300:]}" if tail.strip() else "")
        ) from None
    text = _result_text(result)
    if result.is_error:
        raise MCPToolError(text or "the tool reported an error without a message")
    return text


def _result_text(result: Any) -> str:
    parts: list[str] = []
    for block in result.content or []:
        kind = getattr(block, "type", "unknown")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource" and getattr(block.resource, "text", None) is not None:
            parts.append(block.resource.text)
        elif kind == "resource_link":
            parts.append(f"[resource link: {block.uri}]")
        else:
            mime = getattr(block, "mime_type", None) or getattr(getattr(block, "resource", None), "mime_type", None)
            parts.append(f"[{kind} content{f' ({mime})' if mime else ''} not shown]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, default=str))
    return "\n".join(parts)


def _root_cause(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException) -> str:
    text = redact_urls(str(exc).strip())  # an HTTP error quotes the URL, user info included
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
