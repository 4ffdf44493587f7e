"""Metrics, health endpoints, logging and tracing for the durabot processes.

Four parts, each usable on its own; the entry point wires them once:

- **Metrics**: the Prometheus ``REGISTRY`` of ``agent_core.metrics`` (model tokens and errors, time to
  first token, tool calls, platform API calls, rate-limit waits, event-bus lag); ``/metrics`` serves it.
  Turn and approval metrics are recorded by the workflow through Temporal's replay-safe metric meter,
  so they come out of the Temporal runtime's exporter (``temporal_metrics_runtime``), appended below.
- **Health**: ``serve_health(port, ready)`` runs a small aiohttp server with ``/healthz`` (liveness),
  ``/readyz`` (readiness, from ``ready()``) and ``/metrics``.
- **Logging**: ``configure_logging(level, json, secrets)``: one line per event, JSON if asked, every
  configured secret value replaced by ``***``, and so are credentials inside any URL (user info and
  secret-named query parameters), whoever logs it.
- **Tracing**: ``configure_tracing()`` returns a Temporal ``TracingInterceptor`` when OpenTelemetry
  export is configured (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_TRACES_EXPORTER``), else ``None``.

Temporal's own SDK metrics (worker task slots, poll latencies, RPC requests) are produced by the Rust
core, not by prometheus-client. ``temporal_metrics_runtime(port)`` builds a ``Runtime`` whose core
serves them in Prometheus format on a loopback port; ``serve_health(..., temporal_metrics_url=...)``
then appends that text to ``/metrics``, so one scrape target carries both.
"""

from __future__ import annotations

import asyncio
import json as _json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from agent_core.redaction import redact_urls

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- metrics
# The metrics live in agent_core.metrics (activities and adapters increment them); re-exported here.
from agent_core.metrics import (  # noqa: E402
    METRIC_NAMES,
    REGISTRY,
    WORKFLOW_METRIC_NAMES,
    event_bus_lag_seconds,
    feedback_total,
    first_token_seconds,
    llm_errors_total,
    llm_tokens_total,
    platform_api_calls_total,
    rate_limit_wait_seconds_total,
    tool_calls_total,
)

def metrics_text(registry: CollectorRegistry = REGISTRY) -> bytes:
    """The registry in Prometheus text format."""
    return generate_latest(registry)


def temporal_metrics_runtime(port: int, host: str = "127.0.0.1") -> Any:
    """A Temporal ``Runtime`` whose core serves SDK metrics on ``http://host:port/metrics``.

    Install it before the first client connects, with ``Runtime.set_default(runtime)`` (every client
    and worker then uses it), or pass it to ``Client.connect(runtime=...)``.
    """
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=f"{host}:{port}", durations_as_seconds=True)
        )
    )


# ----------------------------------------------------------------------------------------------- health

Ready = Callable[[], Awaitable[bool]]


def temporal_ready(client_of: Callable[[], Any], timeout: float = 2.0) -> Ready:
    """A readiness check: true while the Temporal frontend answers its health check.

    ``client_of`` returns the connected ``temporalio.client.Client`` (or raises / returns None before
    the process has connected), for example ``lambda: agent.client``.
    """
    from datetime import timedelta

    async def ready() -> bool:
        client = client_of()
        if client is None:
            return False
        return await client.service_client.check_health(timeout=timedelta(seconds=timeout))

    return ready


async def serve_health(
    port: int,
    ready: Ready,
    *,
    host: str = "0.0.0.0",
    ready_timeout: float = 2.0,
    registry: CollectorRegistry = REGISTRY,
    temporal_metrics_url: str | None = None,
) -> web.AppRunner:
    """Serve ``/healthz``, ``/readyz`` and ``/metrics`` on ``host:port``; returns the started runner.

    ``/healthz`` answers 200 while the event loop runs. ``/readyz`` answers 200 when ``ready()`` returns
    true within ``ready_timeout`` seconds, else 503 (an exception counts as not ready).
    ``/metrics`` serves ``registry``, followed by the text at ``temporal_metrics_url`` if given.
    Stop it with ``await runner.cleanup()``. With ``port=0`` the bound port is
    ``runner.addresses[0][1]``.
    """
    scrape = _TemporalScrape(temporal_metrics_url) if temporal_metrics_url else None

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        try:
            ok = await asyncio.wait_for(ready(), ready_timeout)
        except TimeoutError:
            return web.Response(status=503, text="not ready: readiness check timed out\n")
        except Exception as exc:  # readiness must answer, whatever the check raises
            log.debug("readiness check failed", exc_info=True)
            return web.Response(status=503, text=f"not ready: {type(exc).__name__}\n")
        return web.Response(text="ready\n") if ok else web.Response(status=503, text="not ready\n")

    async def metrics(request: web.Request) -> web.Response:
        body = metrics_text(registry)
        if scrape is not None:
            body += await scrape.fetch()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    if scrape is not None:
        app.on_cleanup.append(lambda _app: scrape.close())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


class _TemporalScrape:
    def __init__(self, url: str) -> None:
        self.url = url
        self._session: ClientSession | None = None

    async def fetch(self) -> bytes:
        if self._session is None:
            self._session = ClientSession(timeout=ClientTimeout(total=2))
        try:
            async with self._session.get(self.url) as resp:
                resp.raise_for_status()
                return await resp.read()
        except Exception as exc:  # the process's own metrics must still be served
            return f"# temporal runtime metrics unavailable: {type(exc).__name__}\n".encode()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


# ---------------------------------------------------------------------------------------------- logging

MIN_SECRET_LENGTH = 4  # shorter values ("x", "ok") would blank out ordinary words
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class SecretFilter(logging.Filter):
    """Replaces every configured secret value, and the credentials of any URL, with ``***`` in a
    record's message, arguments, exception text and extra fields. Attach it to handlers (handler
    filters see every record, whichever library logged it)."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is replaced whole.
        self.secrets = sorted(
            {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return redact_urls(text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the pieces, redacted
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    text = record.exc_text or ""
    if record.stack_info:
        text = f"{text}\n{record.stack_info}" if text else record.stack_info
    return text


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, one line: newlines inside are written as ``\\n``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        line = self.formatMessage(record)
        extra = _exception_text(self, record)
        if extra:
            line = f"{line} | {extra}"
        return line.replace("\r", "").replace("\n", "\\n")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, msg, then exc and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        exc = _exception_text(self, record)
        if exc:
            entry["exc"] = exc
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in entry:
                entry[key] = value
        return _json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(
    level: str | int = "INFO", json: bool = False, secrets: Iterable[str | None] = (), stream: Any = None
) -> logging.Handler:
    """Route every log record to one handler on ``stream`` (stderr by default), one line per event.

    Replaces the root logger's handlers, so calling it again reconfigures. Returns the handler.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # HTTP clients log every request at INFO (two lines a turn from the model client alone): below
    # DEBUG only their warnings go out.
    quiet = logging.WARNING if root.getEffectiveLevel() > logging.DEBUG else logging.NOTSET
    for name in _HTTP_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
    return handler


_HTTP_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2")


# ---------------------------------------------------------------------------------------------- tracing

# The OpenTelemetry variables durabot documents (read by configure_tracing and the OTel SDK itself).
OTEL_ENV_VARS = frozenset(
    {
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_TRACES_EXPORTER",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
    }
)


def tracing_enabled(env: Mapping[str, str]) -> bool:
    exporter = (env.get("OTEL_TRACES_EXPORTER") or "").strip().lower()
    if exporter == "none" or (env.get("OTEL_SDK_DISABLED") or "").lower() == "true":
        return False
    return bool(
        exporter or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure_tracing(
    env: Mapping[str, str] | None = None, service_name: str = "durabot", *, set_global: bool = True
) -> Any:
    """Set up OpenTelemetry tracing if the environment asks for it; return a Temporal interceptor.

    Off (returns ``None``) unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) or
    ``OTEL_TRACES_EXPORTER`` is set. ``OTEL_TRACES_EXPORTER`` is ``otlp`` (default; needs the
    ``opentelemetry-exporter-otlp-proto-http`` package) or ``console``. ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES`` are honoured by the SDK. Pass the result to the client's
    ``interceptors=[...]`` (workers built from that client inherit it).
    """
    env = os.environ if env is None else env
    if not tracing_enabled(env):
        return None
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
    from temporalio.contrib.opentelemetry import TracingInterceptor

    exporter_name = (env.get("OTEL_TRACES_EXPORTER") or "otlp").split(",")[0].strip().lower()
    resource = Resource.create({SERVICE_NAME: env.get("OTEL_SERVICE_NAME") or service_name})
    provider = TracerProvider(resource=resource)
    if exporter_name == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    elif exporter_name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning(
                "OTEL tracing asked for, but the OTLP exporter is not installed: "
                "pip install opentelemetry-exporter-otlp-proto-http; spans are not exported"
            )
        else:
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        log.warning(
            "OTEL_TRACES_EXPORTER=%r is not supported (use otlp or console); spans are not exported",
            exporter_name,
        )
    if set_global:  # for libraries that trace through the global provider (it can be set once)
        trace.set_tracer_provider(provider)
    return TracingInterceptor(provider.get_tracer("durabot"))


# ------------------------------------------------------------------------------------- process wiring

def install_temporal_runtime(settings: Any) -> str | None:
    """Before the first connection: have Temporal's core export its metrics (and the workflow's turn
    and approval metrics) on a loopback port. Returns that port's URL for ``serve_health``."""
    if not settings.metrics_port:
        return None
    from temporalio.runtime import Runtime

    from .servers import free_port

    port = free_port()
    Runtime.set_default(temporal_metrics_runtime(port), error_if_already_set=False)
    return f"http://127.0.0.1:{port}/metrics"


async def start_health(settings: Any, client_of: Callable[[], Any], temporal_metrics_url: str | None) -> Any:
    """``/healthz``, ``/readyz`` (the Temporal connection) and ``/metrics`` on DURABOT_METRICS_PORT."""
    if not settings.metrics_port:
        return None
    try:
        runner = await serve_health(settings.metrics_port, temporal_ready(client_of),
                                    temporal_metrics_url=temporal_metrics_url)
    except OSError as exc:  # a second process on one machine: keep running, say why there is no port
        log.warning("health and metrics port %s unavailable (%s); set DURABOT_METRICS_PORT", settings.metrics_port, exc)
        return None
    log.info("health and metrics on port %s (/healthz, /readyz, /metrics)", settings.metrics_port)
    return runner
