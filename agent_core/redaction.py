"""Credentials inside URLs, masked wherever a URL is printed or logged.

A URL may carry a secret in its user info (``redis://:password@host``, ``https://token@host``) or in a
query parameter named like one (``?api_key=...``, ``&X-Amz-Signature=...``). ``redact_urls`` replaces
those parts in any text, leaving scheme, host, port and path readable::

    redact_urls("redis://:hunter2@redis:6379/0")          -> "redis://***@redis:6379/0"
    redact_urls("GET https://h/mcp?token=abc&page=2")    -> "GET https://h/mcp?token=***&page=2"
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

__all__ = ["redact_urls", "url_passwords"]

# scheme://userinfo@ : greedy up to the authority's last '@' (an unescaped '@' in a password splits
# where URL parsers split it too), never past the path, a space or a quote.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s'\"<>?#@]*(?:@[^/\s'\"<>?#@]*)*@")
_QUERY_SECRET = re.compile(
    r"(?i)([?&;][\w.-]*?(?:token|key|secret|password|passwd|pwd|signature|sig|credential|auth)s?=)"
    r"[^&;\s#'\"<>]+"
)


def redact_urls(text: str) -> str:
    """``text`` with every URL's user info and secret-named query values replaced by ``***``."""
    if "://" not in text and "=" not in text:
        return text
    if "@" in text:
        text = _USERINFO.sub(r"\1***@", text)
    if "=" in text:
        text = _QUERY_SECRET.sub(r"\1***", text)
    return text


def url_passwords(*urls: str | None) -> list[str]:
    """The passwords (as written and decoded) of these URLs, for a log filter's list of literal secrets."""
    found: list[str] = []
    for url in urls:
        if not url or "@" not in url:
            continue
        try:
            password = urlsplit(url).password
        except ValueError:
            continue
        if password:
            found += [password, unquote(password)]
    return found
