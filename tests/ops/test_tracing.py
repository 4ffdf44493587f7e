"""configure_tracing: off by default, a Temporal TracingInterceptor when OTEL export is configured."""

from __future__ import annotations

from temporalio.contrib.opentelemetry import TracingInterceptor

from workers.observability import configure_tracing, tracing_enabled


def test_tracing_is_off_without_otel_settings() -> None:
    assert configure_tracing(env={}) is None
    assert configure_tracing(env={"OTEL_SERVICE_NAME": "durabot-worker"}) is None
    assert (
        configure_tracing(
            env={"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
        )
        is None
    )
    assert not tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"})


def test_tracing_is_on_with_an_endpoint_or_an_exporter() -> None:
    assert tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing_enabled({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    interceptor = configure_tracing(
        env={"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "t"}, set_global=False
    )
    assert isinstance(interceptor, TracingInterceptor)
