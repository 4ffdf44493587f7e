"""Credentials inside URLs are masked; everything else of the URL and the text stays readable."""

from __future__ import annotations

import pytest

from agent_core.hooks import RedactSecrets
from agent_core.redaction import redact_urls, url_passwords


@pytest.mark.parametrize(("text", "expected"), [
    ("redis://:hunter2@redis:6379/0", "redis://***@redis:6379/0"),
    ("at rediss://user:p@ss@h:6380/1 now", "at rediss://***@h:6380/1 now"),  # an unescaped @ in the password
    ("https://token@mcp.example/mcp", "https://***@mcp.example/mcp"),
    ("GET https://h/x?api_key=abc&page=2", "GET https://h/x?api_key=***&page=2"),
    ("https://b.s3/o?X-Amz-Signature=f00&X-Amz-Credential=AK%2F1",
     "https://b.s3/o?X-Amz-Signature=***&X-Amz-Credential=***"),
    ("mail bob@example.com or see http://host/a@b", "mail bob@example.com or see http://host/a@b"),
    ("http://host and user@elsewhere", "http://host and user@elsewhere"),
    ("keyboard=3 monkeys=2", "keyboard=3 monkeys=2"),
])
def test_redact_urls(text, expected):
    assert redact_urls(text) == expected


def test_url_passwords_as_written_and_decoded():
    found = url_passwords("redis://:p%40ss-word@h/0", None, "http://h/", "stdio:prog@approve")
    assert found == ["p%40ss-word", "p@ss-word"]


def test_the_redact_secrets_hook_masks_url_credentials_in_tool_output():
    out = RedactSecrets().redact("connected to postgres://app:s3cr3t-pw@db:5432/app")
    assert out == "connected to postgres://[redacted]@db:5432/app"
