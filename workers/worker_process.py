"""``durabot worker``: serves the agent's task queue; drains on SIGTERM, loses nothing on SIGKILL."""

from __future__ import annotations

import asyncio
import gc
import logging

from agent_core import AgentWorker
from agent_core.errors import TemporalUnavailable
from agent_core.settings import Settings

from .app import build_agent

log = logging.getLogger(__name__)


async def run_worker(settings: Settings, graceful_shutdown: float = 30.0) -> None:
    from .observability import install_temporal_runtime, start_health

    runtime_metrics = install_temporal_runtime(settings)
    agent = build_agent(settings, local_worker=False)
    health = await start_health(settings, lambda: agent.client_if_connected, runtime_metrics)
    delay = 0.5
    while True:  # a worker waits for Temporal to come up; once connected, the SDK reconnects by itself
        try:
            await agent.start()
            break
        except TemporalUnavailable as exc:
            log.warning("%s; retrying in %.0fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
    build = settings.build()
    worker = AgentWorker(agent, graceful_shutdown=graceful_shutdown, deployment=build.worker_config())
    temporal_worker = worker.build()
    # What is loaded by now (modules, classes, clients) lives as long as the process: frozen, it is no
    # longer walked by every full collection, which under load took ~100 ms and several % of the CPU.
    gc.freeze()
    task = asyncio.ensure_future(temporal_worker.run())
    log.info("worker %r polling task queue %r on %s (model %s, %d tools, %s)", agent.name, agent.task_queue,
             settings.temporal_address, agent.model.identity, len(agent.tools), build.describe())
    adopting = asyncio.ensure_future(_adopt(agent.client, build)) if build.versioned else None
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        # Stop polling at once; activities already running get the grace period to finish.
        log.info("shutting down: draining running activities (up to %.0fs)", graceful_shutdown)
        await temporal_worker.shutdown()
        await task
        log.info("worker stopped")
    finally:
        if adopting is not None:
            adopting.cancel()
        await agent.close()
        await agent.event_bus.close()
        await agent.store.close()
        if health is not None:
            await health.cleanup()


async def _adopt(client, build) -> None:  # (Client, versioning.BuildInfo)
    """The first versioned build of a deployment becomes current by itself; later ones wait for promote."""
    from agent_core.deployments import adopt_if_first

    try:
        if await adopt_if_first(client, build.deployment, build.build_id):
            log.info("build %s is the first version of deployment %r: made it current", build.build_id,
                     build.deployment)
        else:
            log.info("build %s joined deployment %r; make it current with: durabot deploy promote %s",
                     build.build_id, build.deployment, build.build_id)
    except Exception as exc:  # informational only: the worker serves its version either way
        log.warning("could not check deployment %r: %s", build.deployment, exc)
