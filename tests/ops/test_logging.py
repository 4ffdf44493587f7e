"""configure_logging: one line per event, JSON lines that parse, secrets replaced by ***."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from workers.observability import SecretFilter, configure_logging

TOKEN = "xoxb-1234-5678-abcdefSECRET"
KEY = "sk-test-0123456789"


@pytest.fixture
def capture() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_secrets_are_redacted_in_message_and_args(capture: io.StringIO) -> None:
    configure_logging("INFO", json=False, secrets=[TOKEN, KEY, None, ""], stream=capture)
    log = logging.getLogger("durabot.test")
    log.info(f"token in the message {TOKEN}")
    log.info("token in an arg %s and %r", TOKEN, {"key": KEY})
    log.warning("posting with %s", "Bearer " + TOKEN, extra={"header": f"Authorization: {TOKEN}"})
    out = capture.getvalue()
    assert TOKEN not in out and KEY not in out
    lines = _lines(capture)
    assert len(lines) == 3
    assert lines[0].endswith("durabot.test: token in the message ***")
    assert lines[1].endswith("token in an arg *** and {'key': '***'}")
    assert lines[2].endswith("posting with Bearer ***")


def test_secrets_are_redacted_in_tracebacks_and_json_extras(capture: io.StringIO) -> None:
    configure_logging("INFO", json=True, secrets=[TOKEN], stream=capture)
    log = logging.getLogger("durabot.test")
    try:
        raise RuntimeError(f"auth failed for {TOKEN}\nsecond line")
    except RuntimeError:
        log.exception("call failed")
    log.info("with extra", extra={"header": f"Bearer {TOKEN}", "count": 3})
    assert TOKEN not in capture.getvalue()
    first, second = (json.loads(line) for line in _lines(capture))
    assert first["msg"] == "call failed" and first["level"] == "ERROR"
    assert "RuntimeError: auth failed for ***" in first["exc"]
    assert second["header"] == "Bearer ***" and second["count"] == 3


def test_json_lines_parse_one_per_event(capture: io.StringIO) -> None:
    configure_logging("DEBUG", json=True, secrets=[], stream=capture)
    log = logging.getLogger("durabot.json")
    log.debug("multi\nline %d", 1)
    log.info("unicode é %s", object.__name__)
    lines = _lines(capture)
    assert len(lines) == 2
    entries = [json.loads(line) for line in lines]
    assert entries[0]["msg"] == "multi\nline 1" and entries[0]["level"] == "DEBUG"
    assert entries[0]["logger"] == "durabot.json"
    assert entries[1]["msg"] == "unicode é object"
    assert all(e["ts"].endswith("Z") and "T" in e["ts"] for e in entries)


def test_text_format_keeps_one_line_per_event(capture: io.StringIO) -> None:
    configure_logging("INFO", json=False, secrets=[], stream=capture)
    log = logging.getLogger("durabot.text")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("first\nsecond")
    lines = _lines(capture)
    assert len(lines) == 1
    assert "durabot.text: first\\nsecond | Traceback" in lines[0] and "ValueError: boom" in lines[0]


def test_configure_replaces_handlers_and_sets_level(capture: io.StringIO) -> None:
    configure_logging("WARNING", stream=capture)
    configure_logging("WARNING", stream=capture)
    logging.getLogger("durabot.x").info("hidden")
    logging.getLogger("durabot.x").warning("shown")
    assert len(logging.getLogger().handlers) == 1
    assert len(_lines(capture)) == 1 and "shown" in capture.getvalue()


def test_filter_ignores_too_short_values_and_replaces_longest_first() -> None:
    f = SecretFilter(["x", "abcd", "abcdef"])
    assert f.secrets == ["abcdef", "abcd"]
    assert f.redact("x abcdef abcd") == "x *** ***"
    record = logging.LogRecord("n", logging.INFO, "p", 1, "%s %s", ("abcd",), None)  # bad args: one for two
    assert f.filter(record)
    assert "abcd" not in record.getMessage()


def test_url_credentials_are_masked_without_being_configured(capture: io.StringIO) -> None:
    configure_logging("DEBUG", json=True, secrets=[], stream=capture)
    log = logging.getLogger("durabot.urls")
    log.info("connecting to %s", "redis://:hunter22@redis:6379/0")
    log.debug("HTTP Request: POST %s", "https://bob:pw-1234@mcp.example/mcp?token=tok-123&page=2")
    try:
        raise ConnectionError("cannot reach redis://user:hunter22@h:6379/0")
    except ConnectionError:
        log.exception("bus down")
    log.info("with extra", extra={"url": "http://alice:hunter22@h/"})
    out = capture.getvalue()
    for secret in ("hunter22", "pw-1234", "tok-123", "bob", "alice"):
        assert secret not in out
    assert "connecting to redis://***@redis:6379/0" in out
    assert "POST https://***@mcp.example/mcp?token=***&page=2" in out
    assert "cannot reach redis://***@h:6379/0" in out and '"url": "http://***@h/"' in out


def test_the_command_line_adds_url_passwords_to_the_literal_secrets() -> None:
    from agent_core.settings import Settings
    from workers.cli import _secrets

    settings = Settings.load(env={"REDIS_URL": "redis://:p%40ss-word@redis:6379/0", "OPENAI_API_KEY": KEY,
                                  "DURABOT_MCP_SERVERS": "w=https://u:mcp-tok3n@h/mcp@approve;f=stdio:prog"},
                             dotenv=None)
    secrets = _secrets(settings)
    assert {KEY, "p@ss-word", "mcp-tok3n"} <= set(secrets)
    # a password quoted without its URL (a driver's own message) is masked too
    assert SecretFilter(secrets).redact("AUTH failed for p@ss-word") == "AUTH failed for ***"


def test_http_clients_log_each_request_only_at_debug(capture: io.StringIO) -> None:
    configure_logging("INFO", stream=capture)
    logging.getLogger("httpx2").info("HTTP Request: POST http://model/v1/chat/completions \"HTTP/1.1 200 OK\"")
    logging.getLogger("httpx2").warning("a connection was reset")
    assert [line.split(": ", 1)[-1] for line in _lines(capture)] == ["a connection was reset"]
    configure_logging("DEBUG", stream=capture)
    logging.getLogger("httpx2").info("HTTP Request: GET http://model/v1/models")
    assert _lines(capture)[-1].endswith("HTTP Request: GET http://model/v1/models")
    for name in ("httpx", "httpx2", "httpcore", "httpcore2"):  # as this module found them
        logging.getLogger(name).setLevel(logging.NOTSET)
