"""Which MCP servers an agent uses: ``MCPServer`` (a command to start or a URL, and the approval
policy of its tools) and ``parse_mcp_env``, the ``DURABOT_MCP_SERVERS`` grammar (see mcp.py)."""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import UserError
from .redaction import redact_urls

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass
class MCPServer:
    """One MCP server: a command to start (stdio) or a URL (streamable HTTP).

    ``env`` (stdio) and ``headers`` (HTTP) may carry secrets: they never reach the fingerprint, an
    error message or the ``repr``, and the URL's credentials are masked there too.
    ``requires_approval`` is True (every tool) or the names of the tools that need it; besides those, a
    tool that declares itself destructive (``destructiveHint``) needs approval unless
    ``trust_destructive`` is set. Tool names become ``f"{prefix}_{tool}"``; the prefix defaults to the
    server name, ``""`` means none.
    """

    name: str
    command: list[str] | None = None
    url: str | None = None
    env: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    requires_approval: bool | list[str] = False
    prefix: str | None = None
    timeout: float = 60
    trust_destructive: bool = False

    def __post_init__(self) -> None:
        if not self.name or not _NAME.match(self.name):
            raise UserError(f"MCP server name {self.name!r} must be letters, digits, '_' or '-'")
        if (self.command is None) == (self.url is None):
            raise UserError(f"MCP server {self.name!r}: give either command=[...] (stdio) or url=... (HTTP)")
        if self.command is not None and (isinstance(self.command, str) or not self.command):
            raise UserError(f"MCP server {self.name!r}: command must be a non-empty list such as ['prog', '--flag']")
        if self.url is not None and urlsplit(self.url).scheme not in ("http", "https"):
            raise UserError(f"MCP server {self.name!r}: url must start with http:// or https://")
        if self.env and self.url is not None:
            raise UserError(f"MCP server {self.name!r}: env applies to stdio servers; use headers for HTTP")
        if self.headers and self.command is not None:
            raise UserError(f"MCP server {self.name!r}: headers apply to HTTP servers; use env for stdio")
        if not self.timeout or self.timeout <= 0:
            raise UserError(f"MCP server {self.name!r}: timeout must be a positive number of seconds")

    def __repr__(self) -> str:
        shown = f"url={redact_urls(self.url)!r}" if self.url is not None else f"command={self.command!r}"
        return (f"MCPServer({self.name!r}, {shown}, requires_approval={self.requires_approval!r}, "
                f"trust_destructive={self.trust_destructive})")

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "http"

    def where(self) -> str:
        """What the fingerprint and messages may show of the server: no env, headers, userinfo or query."""
        if self.command is not None:
            program = os.path.basename(self.command[0])
            args = self.command[1:]
            if len(args) >= 2 and args[0] == "-m":  # `python -m module`: the module is the program
                program += f" -m {args[1]}"
            return program
        parts = urlsplit(self.url or "")
        return f"{parts.hostname or ''}{parts.path or '/'}"

    def wants_approval(self, tool_name: str, full_name: str, destructive: bool = False) -> bool:
        if destructive and not self.trust_destructive:
            return True
        if isinstance(self.requires_approval, bool):
            return self.requires_approval
        return tool_name in self.requires_approval or full_name in self.requires_approval

    def tool_name(self, remote: str) -> str:
        prefix = self.name if self.prefix is None else self.prefix
        return re.sub(r"[^A-Za-z0-9_-]", "_", f"{prefix}_{remote}" if prefix else remote)[:64]


def parse_mcp_env(value: str, *, variable: str = "DURABOT_MCP_SERVERS") -> list[MCPServer]:
    """Parse ``name=stdio:command args`` and ``name=http(s)://...`` items split by ';', each followed by
    any of the markers ``@approve``, ``@approve=t1,t2`` and ``@trust-destructive``."""
    servers: list[MCPServer] = []
    for item in (s.strip() for s in value.split(";")):
        if not item:
            continue
        name, eq, spec = item.partition("=")
        name, spec = name.strip(), spec.strip()
        shown = redact_urls(item)
        if not eq or not name or not spec:
            raise UserError(f"{variable}: {shown!r} is not name=stdio:command or name=http://host/path")
        spec, options = _markers(variable, shown, spec)
        if spec.startswith("stdio:"):
            try:
                command = shlex.split(spec[len("stdio:"):])
            except ValueError as exc:
                raise UserError(f"{variable}: server {name!r}: cannot split its command ({exc})") from None
            if not command:
                raise UserError(f"{variable}: server {name!r}: stdio: needs a command, e.g. stdio:my-server --flag")
            server = _server(variable, name, command=command, **options)
        elif spec.startswith(("http://", "https://")):
            server = _server(variable, name, url=spec, **options)
        else:
            raise UserError(
                f"{variable}: server {name!r}: {spec.split(':')[0]!r} is not a transport; "
                "use stdio:command args or http(s)://host/path"
            )
        if any(s.name == name for s in servers):
            raise UserError(f"{variable}: server name {name!r} is given twice")
        servers.append(server)
    return servers


def _markers(variable: str, shown: str, spec: str) -> tuple[str, dict[str, Any]]:
    """Strip the trailing ``@marker``s; an ``@`` followed by anything else belongs to the spec (a URL's
    user, an argument)."""
    options: dict[str, Any] = {}
    while True:
        head, at, tail = spec.rpartition("@")
        marker = tail.strip()
        if not at:
            return spec, options
        if marker == "approve":
            key, value = "requires_approval", True
        elif marker.startswith("approve="):
            value = [t.strip() for t in marker[len("approve="):].split(",") if t.strip()]
            if not value:
                raise UserError(
                    f"{variable}: {shown!r}: @approve= needs tool names, e.g. @approve=delete,write")
            key = "requires_approval"
        elif marker == "trust-destructive":
            key, value = "trust_destructive", True
        else:
            return spec, options
        if key in options:
            raise UserError(f"{variable}: {shown!r}: @{marker.partition('=')[0]} is given twice")
        options[key] = value
        spec = head.strip()


def _server(variable: str, name: str, **kwargs: Any) -> MCPServer:
    try:
        return MCPServer(name, **kwargs)
    except UserError as exc:
        raise UserError(f"{variable}: {redact_urls(str(exc))}") from None
