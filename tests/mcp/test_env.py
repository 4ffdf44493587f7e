"""The DURABOT_MCP_SERVERS grammar."""

from __future__ import annotations

import pytest

from agent_core import UserError
from agent_core.mcp import MCPServer, parse_mcp_env


def test_stdio_http_and_approval_items():
    servers = parse_mcp_env(
        " files=stdio:python -m my_server --root '/data/my files' ;"
        "search=http://127.0.0.1:8080/mcp;deploy=stdio:deploy-mcp@approve;"
        "db=https://user@db.example/mcp@approve=drop_table, truncate ;"
    )
    assert servers == [
        MCPServer("files", command=["python", "-m", "my_server", "--root", "/data/my files"]),
        MCPServer("search", url="http://127.0.0.1:8080/mcp"),
        MCPServer("deploy", command=["deploy-mcp"], requires_approval=True),
        MCPServer("db", url="https://user@db.example/mcp", requires_approval=["drop_table", "truncate"]),
    ]


def test_empty_value_is_no_servers():
    assert parse_mcp_env("") == [] and parse_mcp_env(" ; ") == []


def test_an_at_sign_inside_a_url_is_not_an_approval_marker():
    (server,) = parse_mcp_env("s=http://token@host/mcp")
    assert server.url == "http://token@host/mcp" and server.requires_approval is False


@pytest.mark.parametrize(("value", "message"), [
    ("files", "is not name=stdio:command"),
    ("=stdio:x", "is not name=stdio:command"),
    ("files=", "is not name=stdio:command"),
    ("files=stdio:", "stdio: needs a command"),
    ("files=stdio:prog 'unclosed", "cannot split its command"),
    ("files=ftp://host/x", "'ftp' is not a transport"),
    ("files=python -m server", "is not a transport"),
    ("a=stdio:x;a=stdio:y", "'a' is given twice"),
    ("bad name=stdio:x", "DURABOT_MCP_SERVERS: MCP server name 'bad name'"),
    ("d=stdio:x@approve=", "@approve= needs tool names"),
])
def test_malformed_values_are_user_errors(value, message):
    with pytest.raises(UserError, match=message):
        parse_mcp_env(value)
