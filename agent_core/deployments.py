"""A worker deployment's versions, and moving traffic between them (``durabot deploy``).

The Python client has no high-level calls for worker deployments yet, so these wrap the workflow
service RPCs (DescribeWorkerDeployment, SetWorkerDeploymentCurrentVersion,
SetWorkerDeploymentRampingVersion) in small results. New conversations go to the current version
(or, for a ramp's share, the ramping one); running conversations stay pinned to theirs until their
next continue-as-new between turns (see versioning.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import RoutingConfigUpdateState, VersionDrainageStatus, WorkerDeploymentVersionStatus
from temporalio.api.deployment.v1 import WorkerDeploymentVersion
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    DescribeWorkerDeploymentVersionRequest,
    DescribeWorkerDeploymentResponse,
    SetWorkerDeploymentCurrentVersionRequest,
    SetWorkerDeploymentRampingVersionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from .errors import UserError

__all__ = ["DeploymentState", "VersionState", "adopt_if_first", "describe", "promote"]

_IDENTITY = "durabot deploy"


def _short(enum_name: str, prefix: str) -> str:
    return enum_name.removeprefix(prefix).lower() or "unspecified"


@dataclass(frozen=True)
class VersionState:
    build_id: str
    status: str  # inactive | current | ramping | draining | drained | created
    drainage: str  # "" while it takes traffic; draining | drained after


@dataclass(frozen=True)
class DeploymentState:
    name: str
    current: str | None  # build id; None: new conversations go to unversioned workers
    ramping: str | None
    ramp_percent: float
    propagated: bool  # the routing change reached every task queue
    versions: list[VersionState] = field(default_factory=list)
    conflict_token: bytes = b""

    def version(self, build_id: str) -> VersionState | None:
        return next((v for v in self.versions if v.build_id == build_id), None)

    def lines(self) -> list[str]:
        out = [f"deployment {self.name}: current {self.current or '(unversioned)'}"
               + (f", ramping {self.ramping} at {self.ramp_percent:g}%" if self.ramping else "")
               + ("" if self.propagated else " (routing change still propagating)")]
        for v in self.versions:
            shown = v.status if v.drainage in ("", v.status) else f"{v.status} ({v.drainage})"
            out.append(f"  {v.build_id}: {shown}")
        return out


def _state(resp: DescribeWorkerDeploymentResponse) -> DeploymentState:
    info = resp.worker_deployment_info
    rc = info.routing_config
    versions = [
        VersionState(
            build_id=s.deployment_version.build_id,
            status=_short(WorkerDeploymentVersionStatus.Name(s.status), "WORKER_DEPLOYMENT_VERSION_STATUS_"),
            drainage=("" if s.drainage_status == VersionDrainageStatus.VERSION_DRAINAGE_STATUS_UNSPECIFIED
                      else _short(VersionDrainageStatus.Name(s.drainage_status), "VERSION_DRAINAGE_STATUS_")),
        )
        for s in info.version_summaries
    ]
    in_progress = info.routing_config_update_state == RoutingConfigUpdateState.ROUTING_CONFIG_UPDATE_STATE_IN_PROGRESS
    return DeploymentState(
        name=info.name, current=rc.current_deployment_version.build_id or None,
        ramping=rc.ramping_deployment_version.build_id or None, ramp_percent=rc.ramping_version_percentage,
        propagated=not in_progress, versions=versions, conflict_token=resp.conflict_token,
    )


async def describe(client: Client, deployment: str) -> DeploymentState | None:
    """The deployment's versions and routing; None when no versioned worker has polled it yet."""
    try:
        resp = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment))
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return _state(resp)


async def promote(client: Client, deployment: str, build_id: str, ramp: float | None = None,
                  wait: float = 15.0) -> DeploymentState:
    """Make ``build_id`` the current version, or with ``ramp`` (0-100) the ramping version taking that
    share of new conversations (and of conversations moving at continue-as-new). Waits up to ``wait``
    seconds for the new build's workers to poll every task queue the current build polls (workflow
    and activity pollers register one by one); Temporal refuses the change before that."""
    state = await describe(client, deployment)
    if state is None:
        raise UserError(f"worker deployment {deployment!r} does not exist yet: start a worker with "
                        f"DURABOT_BUILD_ID={build_id} on its task queue first")
    if state.version(build_id) is None:
        known = ", ".join(v.build_id for v in state.versions) or "none"
        raise UserError(f"build {build_id!r} has no worker in deployment {deployment!r} (builds: {known}); "
                        "start its workers first, then promote")
    if ramp is not None and not 0 <= ramp <= 100:
        raise UserError(f"--ramp {ramp:g} is not a percentage between 0 and 100")
    if state.current is not None and state.current != build_id:
        await _wait_for_queues(client, deployment, build_id, state.current, wait)
    if ramp is None or ramp == 100:
        await client.workflow_service.set_worker_deployment_current_version(
            SetWorkerDeploymentCurrentVersionRequest(
                namespace=client.namespace, deployment_name=deployment, build_id=build_id,
                conflict_token=state.conflict_token, identity=_IDENTITY))
    else:
        await client.workflow_service.set_worker_deployment_ramping_version(
            SetWorkerDeploymentRampingVersionRequest(
                namespace=client.namespace, deployment_name=deployment, build_id=build_id, percentage=ramp,
                conflict_token=state.conflict_token, identity=_IDENTITY))
    after = await describe(client, deployment)
    assert after is not None
    return after


async def _queues(client: Client, deployment: str, build_id: str) -> set[tuple[str, int]]:
    resp = await client.workflow_service.describe_worker_deployment_version(
        DescribeWorkerDeploymentVersionRequest(
            namespace=client.namespace,
            deployment_version=WorkerDeploymentVersion(deployment_name=deployment, build_id=build_id)))
    return {(q.name, q.type) for q in resp.worker_deployment_version_info.task_queue_infos}


async def _wait_for_queues(client: Client, deployment: str, build_id: str, current: str, wait: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        missing = await _queues(client, deployment, current) - await _queues(client, deployment, build_id)
        if not missing:
            return
        if loop.time() > deadline:
            names = ", ".join(f"{name} ({TaskQueueType.Name(kind).removeprefix('TASK_QUEUE_TYPE_').lower()})"
                              for name, kind in sorted(missing))
            raise UserError(f"build {build_id!r} has no worker polling {names}, which build {current!r} serves: "
                            "start its workers on every task queue first, then promote")
        await asyncio.sleep(0.2)


async def adopt_if_first(client: Client, deployment: str, build_id: str, wait: float = 60.0) -> bool:
    """Make ``build_id`` current when the deployment has no current or ramping version yet (its first
    versioned build), so a fresh install needs no manual step; later builds wait for ``promote``.
    Waits up to ``wait`` seconds for the worker's first poll to register the version."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        state = await describe(client, deployment)
        if state is not None and state.version(build_id) is not None:
            break
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.2)  # the version appears once the worker's first poll reached the server
    if state.current is not None or state.ramping is not None:
        return False
    try:
        await client.workflow_service.set_worker_deployment_current_version(
            SetWorkerDeploymentCurrentVersionRequest(
                namespace=client.namespace, deployment_name=deployment, build_id=build_id,
                conflict_token=state.conflict_token, identity=_IDENTITY))
    except RPCError as err:
        if err.status in (RPCStatusCode.FAILED_PRECONDITION, RPCStatusCode.ABORTED):
            return False  # another build's worker adopted the deployment first: the conflict token says so
        raise
    return True
