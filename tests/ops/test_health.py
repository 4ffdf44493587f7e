"""serve_health: /healthz, /readyz from the readiness callback, /metrics with the named metrics and,
bridged, the Temporal core's own metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from temporalio.client import Client

from workers.servers import free_port
from workers import observability as obs


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as resp:
        return resp.status, await resp.text()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


Serve = Callable[..., Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners = []

    async def start(ready: obs.Ready, **kwargs: object) -> str:
        runner = await obs.serve_health(0, ready, host="127.0.0.1", **kwargs)
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_readyz_follows_the_callback(serve: Serve, http: aiohttp.ClientSession) -> None:
    state = {"ready": False}

    async def ready() -> bool:
        return state["ready"]

    base = await serve(ready)
    assert await _get(http, f"{base}/healthz") == (200, "ok\n")
    assert (await _get(http, f"{base}/readyz"))[0] == 503
    state["ready"] = True
    assert await _get(http, f"{base}/readyz") == (200, "ready\n")
    state["ready"] = False
    assert (await _get(http, f"{base}/readyz"))[0] == 503
    assert (await _get(http, f"{base}/healthz"))[0] == 200  # liveness does not depend on readiness


async def test_readyz_is_503_when_the_check_raises_or_hangs(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    never = asyncio.Event()

    async def raises() -> bool:
        raise ConnectionError("temporal is down")

    async def hangs() -> bool:
        await never.wait()
        return True

    status, body = await _get(http, f"{await serve(raises)}/readyz")
    assert (status, body) == (503, "not ready: ConnectionError\n")
    status, body = await _get(http, f"{await serve(hangs, ready_timeout=0.05)}/readyz")
    assert (status, body) == (503, "not ready: readiness check timed out\n")


async def test_metrics_lists_every_named_metric(serve: Serve, http: aiohttp.ClientSession) -> None:
    async def ready() -> bool:
        return True

    before = obs.REGISTRY.get_sample_value("durabot_llm_errors_total", {"kind": "rate_limit"}) or 0.0
    obs.first_token_seconds.observe(0.2)
    obs.llm_tokens_total.labels(kind="completion").inc(20)
    obs.llm_errors_total.labels(kind="rate_limit").inc()
    obs.tool_calls_total.labels(tool="deploy", outcome="ok").inc()
    obs.platform_api_calls_total.labels(platform="slack", method="chat.update").inc()
    obs.rate_limit_wait_seconds_total.labels(platform="discord").inc(0.4)
    obs.event_bus_lag_seconds.observe(0.003)

    status, text = await _get(http, f"{await serve(ready)}/metrics")
    assert status == 200
    for name in obs.METRIC_NAMES:
        assert f"# TYPE {name} " in text, name
    assert f'durabot_llm_errors_total{{kind="rate_limit"}} {before + 1}' in text
    assert 'durabot_tool_calls_total{outcome="ok",tool="deploy"}' in text
    assert 'durabot_platform_api_calls_total{method="chat.update",platform="slack"} ' in text
    assert "_created" not in text


async def test_metrics_include_the_temporal_runtime(
    serve: Serve, http: aiohttp.ClientSession, temporal_server: object
) -> None:
    port = free_port()
    runtime = obs.temporal_metrics_runtime(port)
    client = await Client.connect(temporal_server.address, runtime=runtime)  # type: ignore[attr-defined]
    assert await client.service_client.check_health()

    async def ready() -> bool:
        return True

    status, text = await _get(
        http, f"{await serve(ready, temporal_metrics_url=f'http://127.0.0.1:{port}/metrics')}/metrics"
    )
    assert status == 200
    assert "durabot_llm_tokens_total" in text
    assert "temporal_request" in text  # the core SDK's RPC counter, served by the runtime

    # An unreachable runtime endpoint leaves the process's own metrics in place.
    status, text = await _get(
        http, f"{await serve(ready, temporal_metrics_url=f'http://127.0.0.1:{free_port()}/metrics')}/metrics"
    )
    assert status == 200
    assert "durabot_llm_tokens_total" in text
    assert "# temporal runtime metrics unavailable" in text


async def test_temporal_ready_reflects_the_connection(temporal_server: object) -> None:
    client = await Client.connect(temporal_server.address)  # type: ignore[attr-defined]
    assert await obs.temporal_ready(lambda: client)() is True
    assert await obs.temporal_ready(lambda: None)() is False
