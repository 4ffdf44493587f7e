"""Worker Versioning: which build a worker is, and how it joins its worker deployment.

A worker deployment is named after the task queue; each build of the worker is one version of it
(``<deployment>.<build id>``). The conversation workflow is PINNED: a run stays on the version it
started on, so a deploy never changes the code under a turn in flight. Between turns the workflow
continues as new when Temporal says the deployment's target version changed (workflow.py), and the
new run starts on the current version: continue-as-new is where a conversation moves to new code.

The build id is ``DURABOT_BUILD_ID`` (an image tag, a release) or, when that is ``auto``, derived
from the package version and the source of the workflow-side modules, so two builds with the same
workflow code share an id and any change to it makes a new one.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
from dataclasses import dataclass

from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import WorkerDeploymentConfig

from .errors import UserError

__all__ = ["AUTO", "WORKFLOW_MODULES", "BuildInfo", "build_info", "check_build_id", "default_build_id", "deployment_name"]

AUTO = "auto"  # DURABOT_BUILD_ID=auto: versioned, with the derived build id

# The modules whose code runs inside the conversation workflow: what decides its commands.
WORKFLOW_MODULES = (
    "agent_core.workflow", "agent_core.model_round", "agent_core.tool_phase", "agent_core.approvals",
    "agent_core.delegation", "agent_core.window", "agent_core.outbox", "agent_core.idle",
    "agent_core.seen_ids", "agent_core.retries", "agent_core.limits", "agent_core.contract",
    "agent_core.types",
)


def _package_version() -> str:
    try:
        return importlib.metadata.version("durabot")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"  # run from a checkout without an install


def default_build_id() -> str:
    """``<package version>-<12 hex of sha256 over the workflow modules' source>``."""
    digest = hashlib.sha256()
    for name in WORKFLOW_MODULES:
        module = importlib.import_module(name)
        loader = getattr(module, "__loader__", None)
        source = loader.get_source(name) if loader is not None and hasattr(loader, "get_source") else None
        digest.update(name.encode() + b"\0" + (source or "").encode() + b"\0")
    return f"{_package_version()}-{digest.hexdigest()[:12]}"


def deployment_name(task_queue: str) -> str:
    """The worker deployment of a task queue: its name with ``.`` (the version separator) made ``-``."""
    return task_queue.replace(".", "-")


@dataclass(frozen=True)
class BuildInfo:
    """What a worker process is: its build id, and whether it runs as a version of a deployment."""

    build_id: str
    versioned: bool
    deployment: str

    @property
    def version(self) -> WorkerDeploymentVersion:
        return WorkerDeploymentVersion(self.deployment, self.build_id)

    def worker_config(self) -> WorkerDeploymentConfig | None:
        """The Temporal worker's deployment options; None runs it unversioned, as before versioning."""
        if not self.versioned:
            return None
        return WorkerDeploymentConfig(
            version=self.version, use_worker_versioning=True,
            default_versioning_behavior=VersioningBehavior.PINNED,
        )

    def describe(self) -> str:
        if self.versioned:
            return f"build {self.build_id} (version {self.version.to_canonical_string()})"
        return f"build {self.build_id} (unversioned: set DURABOT_BUILD_ID to deploy with Worker Versioning)"


def check_build_id(value: str | None) -> str | None:
    """``DURABOT_BUILD_ID`` as read at start-up: None when unset; a clear error when unusable."""
    value = (value or "").strip()
    if any(c.isspace() for c in value):
        raise UserError(f"DURABOT_BUILD_ID={value!r} contains whitespace: use the image tag or release, e.g. 1.4.0")
    if len(value) > 255:
        raise UserError("DURABOT_BUILD_ID is longer than 255 characters: use the image tag or release")
    return value or None


def build_info(setting: str | None, task_queue: str, deployment: str | None = None) -> BuildInfo:
    """From ``DURABOT_BUILD_ID``: unset runs unversioned (the derived id is still reported), ``auto``
    versions with the derived id, anything else is the build id itself. ``deployment`` overrides the
    name derived from the task queue (the worker controller chooses its own)."""
    value = check_build_id(setting) or ""
    build_id = default_build_id() if value in ("", AUTO) else value
    if deployment is not None and "." in deployment:
        raise UserError(f"TEMPORAL_DEPLOYMENT_NAME={deployment!r} contains '.', which separates it from the build id")
    return BuildInfo(build_id=build_id, versioned=bool(value), deployment=deployment or deployment_name(task_queue))
