"""Checks of deploy/ against the code: variables against ``ENV_VARS``, commands against the CLI parser.

Each ``check_*`` returns a list of problems (empty when all is well), so tests can run them on the real
files and on known-bad examples alike.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import re
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from workers.settings import ENV_VARS
from workers.cli import _parser
from workers.observability import OTEL_ENV_VARS

ALLOWED_ENV = frozenset(ENV_VARS) | OTEL_ENV_VARS
HEALTH_PATHS = {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}
SLACK_HTTP_PORT = int(ENV_VARS["DURABOT_HTTP_PORT"] or 3000)
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def worker_drain_seconds() -> float:
    from workers.worker_process import run_worker

    return float(inspect.signature(run_worker).parameters["graceful_shutdown"].default)


def parse_cli(argv: list[str]) -> tuple[Any, str | None]:
    """Parse ``durabot`` arguments; return (namespace, None) or (None, the parser's complaint)."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            return _parser().parse_args(argv), None
    except SystemExit:
        lines = err.getvalue().strip().splitlines()
        return None, lines[-1] if lines else "exits instead of running"


def check_env_names(names: Iterable[str], where: str) -> list[str]:
    return [f"{where}: unknown environment variable {n!r}" for n in names if n not in ALLOWED_ENV]


def check_command(argv: list[str], where: str) -> list[str]:
    _args, error = parse_cli([str(a) for a in argv])
    return (
        [f"{where}: 'durabot {shlex.join(map(str, argv))}' is not a durabot command: {error}"]
        if error
        else []
    )


def env_file_keys(text: str, *, commented: bool = False) -> list[str]:
    """Variable names assigned in an env file; with ``commented``, also those in ``# NAME=`` lines."""
    pattern = (
        r"^\s*#?\s*([A-Za-z_][A-Za-z0-9_]*)=" if commented else r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)="
    )
    return re.findall(pattern, text, flags=re.MULTILINE)


def check_env_example(text: str) -> list[str]:
    problems = check_env_names(env_file_keys(text, commented=True), "env.example")
    listed = set(env_file_keys(text, commented=True))
    problems += [f"env.example: {name} is not listed" for name in ENV_VARS if name not in listed]
    return problems


# ---------------------------------------------------------------------------------------------- compose


def _argv(value: Any) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def _is_durabot(service: dict[str, Any]) -> bool:
    return "build" in service or "durabot" in str(service.get("image", ""))


def check_compose(doc: dict[str, Any], base_dir: Path) -> list[str]:
    problems: list[str] = []
    services = doc.get("services") or {}
    durabot = {name: s for name, s in services.items() if _is_durabot(s)}
    if not durabot:
        return ["compose: no durabot service"]
    roles: dict[str, list[str]] = {}
    for name, svc in durabot.items():
        where = f"compose service {name!r}"
        entrypoint = _argv(svc.get("entrypoint"))
        if entrypoint and entrypoint != ["durabot"]:
            problems.append(f"{where}: entrypoint {entrypoint} is not durabot")
        argv = _argv(svc.get("command"))
        problems += check_command(argv, where)
        if argv:
            roles.setdefault(argv[0], []).append(name)
        env = svc.get("environment") or {}
        names = list(env) if isinstance(env, dict) else [str(e).split("=", 1)[0] for e in env]
        problems += check_env_names(names, where)
        for entry in svc.get("env_file") or []:
            entry = {"path": entry} if isinstance(entry, str) else entry
            path = base_dir / entry["path"]
            if not path.is_file():
                if entry.get("required", True):
                    problems.append(f"{where}: env_file {entry['path']!r} does not exist")
                continue
            problems += check_env_names(
                env_file_keys(path.read_text()), f"{where} env_file {entry['path']!r}"
            )
    for name in roles.get("worker", []):
        svc = durabot[name]
        if "container_name" in svc:
            problems.append(f"compose service {name!r}: container_name prevents --scale")
        if "replicas" not in (svc.get("deploy") or {}):
            problems.append(f"compose service {name!r}: no deploy.replicas")
        if _seconds(svc.get("stop_grace_period", "10s")) <= worker_drain_seconds():
            problems.append(f"compose service {name!r}: stop_grace_period must exceed the worker's drain")
    for name in roles.get("slack", []):
        ports = [str(p) for p in durabot[name].get("ports") or []]
        if not any(p.rsplit(":", 1)[-1] == str(SLACK_HTTP_PORT) for p in ports):
            problems.append(f"compose service {name!r}: does not publish port {SLACK_HTTP_PORT}")
    for role in ("worker", "slack", "discord"):
        if role not in roles:
            problems.append(f"compose: no service runs 'durabot {role}'")
    return problems


def _seconds(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(value)):
        total += float(amount) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


# ------------------------------------------------------------------------------------------- kubernetes


def load_k8s(directory: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _durabot_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    return [
        c for c in spec.get("containers", []) if str(c.get("image", "")).split(":")[0].endswith("durabot")
    ]


def check_k8s(docs: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    by_kind: dict[tuple[str, str], dict[str, Any]] = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    roles: dict[str, dict[str, Any]] = {}
    for doc in docs:
        if doc["kind"] == "Secret" and doc.get("data"):
            problems.append(f"Secret {doc['metadata']['name']!r}: use stringData with placeholders, not data")
        if doc["kind"] not in WORKLOADS:
            continue
        for c in _durabot_containers(doc):
            where = f"{doc['kind']} {doc['metadata']['name']!r} container {c['name']!r}"
            if c.get("command") not in (None, ["durabot"]):
                problems.append(f"{where}: command {c['command']} is not durabot")
            argv = [str(a) for a in c.get("args") or []]
            problems += check_command(argv, where)
            if argv:
                roles[argv[0]] = doc
            problems += check_env_names([e["name"] for e in c.get("env") or []], where)
            problems += _check_env_from(c, by_kind, where)
            problems += _check_probes(c, where)
    problems += _check_roles(roles, docs)
    return problems


def _check_env_from(
    c: dict[str, Any], by_kind: dict[tuple[str, str], dict[str, Any]], where: str
) -> list[str]:
    problems: list[str] = []
    for source in c.get("envFrom") or []:
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key not in source:
                continue
            name = source[key]["name"]
            doc = by_kind.get((kind, name))
            if doc is None:
                problems.append(f"{where}: {kind} {name!r} is not in the manifests")
                continue
            keys = list(doc.get("data") or {}) + list(doc.get("stringData") or {})
            problems += check_env_names(keys, f"{where} via {kind} {name!r}")
    return problems


def _check_probes(c: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    ports = {p.get("name") for p in c.get("ports") or []} | {p["containerPort"] for p in c.get("ports") or []}
    for probe, path in HEALTH_PATHS.items():
        get = (c.get(probe) or {}).get("httpGet")
        if not get:
            problems.append(f"{where}: no {probe} on {path}")
            continue
        if get.get("path") != path:
            problems.append(f"{where}: {probe} checks {get.get('path')!r}, not {path!r}")
        if get.get("port") not in ports:
            problems.append(f"{where}: {probe} port {get.get('port')!r} is not a container port")
    return problems


def _pod(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]


def _check_roles(roles: dict[str, dict[str, Any]], docs: list[dict[str, Any]]) -> list[str]:
    problems = [
        f"kubernetes: no workload runs 'durabot {r}'"
        for r in ("worker", "slack", "discord")
        if r not in roles
    ]
    worker = roles.get("worker")
    if worker is not None:
        grace = _pod(worker)["spec"].get("terminationGracePeriodSeconds", 30)
        if grace <= worker_drain_seconds():
            problems.append(
                f"worker: terminationGracePeriodSeconds {grace} must exceed the "
                f"{worker_drain_seconds():g}s drain"
            )
        hpas = [
            d
            for d in docs
            if d["kind"] == "HorizontalPodAutoscaler"
            and d["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
        ]
        if not any(
            m.get("resource", {}).get("name") == "cpu" for h in hpas for m in h["spec"].get("metrics", [])
        ):
            problems.append("worker: no HorizontalPodAutoscaler on CPU targets it")
    slack = roles.get("slack")
    if slack is not None:
        problems += _check_slack(slack, docs)
    discord = roles.get("discord")
    if discord is not None:
        if discord["spec"].get("replicas", 1) != 1:
            problems.append("discord: replicas must be 1 (one gateway connection per token)")
        if (discord["spec"].get("strategy") or {}).get("type") != "Recreate":
            problems.append("discord: strategy must be Recreate (no two gateway sessions during a rollout)")
    return problems


def _check_slack(slack: dict[str, Any], docs: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    labels = _pod(slack)["metadata"].get("labels", {})
    (container,) = _durabot_containers(slack)
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
    if SLACK_HTTP_PORT not in ports.values():
        problems.append(f"slack: container port {SLACK_HTTP_PORT} (HTTP mode) is not declared")
    services = [
        d
        for d in docs
        if d["kind"] == "Service"
        and d["spec"].get("selector")
        and d["spec"]["selector"].items() <= labels.items()
    ]
    targets = {
        ports.get(p.get("targetPort"), p.get("targetPort")) for s in services for p in s["spec"]["ports"]
    }
    if SLACK_HTTP_PORT not in targets:
        problems.append(f"slack: no Service selects the pods and targets port {SLACK_HTTP_PORT}")
    for source in container.get("envFrom") or []:
        name = (source.get("secretRef") or source.get("configMapRef") or {}).get("name")
        for d in docs:
            values = {**(d.get("data") or {}), **(d.get("stringData") or {})}
            if (
                d["metadata"]["name"] == name
                and d["kind"] in ("Secret", "ConfigMap")
                and values.get("SLACK_APP_TOKEN")
            ):
                problems.append(f"slack: {d['kind']} {name!r} sets SLACK_APP_TOKEN (Socket Mode, not HTTP)")
    return problems
