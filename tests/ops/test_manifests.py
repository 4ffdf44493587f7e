"""deploy/ checked against the code: every variable is one durabot reads, every command parses, and the
operational rules hold (worker drain < grace period, one Discord replica, Slack on port 3000)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from workers.settings import ENV_VARS
from tests.ops.manifest_checks import (
    check_command,
    check_compose,
    check_env_example,
    check_k8s,
    load_k8s,
    worker_drain_seconds,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def test_compose_matches_the_cli_and_settings() -> None:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert check_compose(doc, DEPLOY) == []


def test_env_example_lists_every_variable() -> None:
    assert check_env_example((DEPLOY / "env.example").read_text()) == []


def test_k8s_manifests_match_the_cli_and_settings() -> None:
    docs = load_k8s(DEPLOY / "k8s")
    assert {d["kind"] for d in docs} >= {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "Secret",
        "ConfigMap",
    }
    assert check_k8s(docs) == []


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    files = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_dockerfile_runs_durabot_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["durabot"\]$', text, re.MULTILINE)
    cmd = re.search(r"^CMD (\[.*\])$", text, re.MULTILINE)
    assert cmd and check_command(yaml.safe_load(cmd.group(1)), "Dockerfile CMD") == []
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^FROM python:3\.11-slim|^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.MULTILINE)
    ignore = (ROOT / ".dockerignore").read_text()
    assert ".env" in ignore


def test_the_image_installs_the_pinned_versions_without_extras() -> None:
    text = (ROOT / "Dockerfile").read_text()
    (install,) = re.findall(r"^RUN pip install (.*)$", text, re.MULTILINE)
    assert install.split()[:3] == ["-c", "constraints.txt", "."]  # no [dev]: no local servers in production
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    for line in re.findall(r"^COPY (?!--from)(.*) \S+$", text, re.MULTILINE):
        for pattern in line.split():
            paths = sorted(ROOT.glob(pattern))
            assert paths or pattern.endswith("*"), f"COPY {pattern}: nothing in the repository"
            for path in paths:
                assert _in_build_context(path.relative_to(ROOT).as_posix(), rules), \
                    f"COPY {pattern}: .dockerignore keeps {path.name} out of the build context"


def _in_build_context(path: str, rules: list[str]) -> bool:
    from fnmatch import fnmatch

    included = True
    for rule in rules:  # the last rule that matches decides, as Docker reads the file
        if fnmatch(path, rule.lstrip("!")):
            included = rule.startswith("!")
    return included


# ------------------------------------------------------------------------- the checks catch mistakes

BAD_COMPOSE = """
services:
  worker:
    build: ..
    command: ["wroker"]
    container_name: durabot-worker
    environment:
      TEMPORAL_ADRESS: temporal:7233
      REDIS_URL: redis://redis:6379/0
    env_file: [missing.env]
  slack:
    image: durabot:dev
    command: slack --no-local-wroker
    environment: ["SLACK_BOT_TOKEN=x", "OTEL_SERVICE_NAME=s", "OTEL_MADE_UP=1"]
"""


def test_compose_check_catches_mistakes(tmp_path: Path) -> None:
    problems = "\n".join(check_compose(yaml.safe_load(BAD_COMPOSE), tmp_path))
    assert (
        "'durabot wroker' is not a durabot command: durabot: error: argument command: invalid choice"
        in problems
    )
    assert "unknown environment variable 'TEMPORAL_ADRESS'" in problems
    assert "unknown environment variable 'OTEL_MADE_UP'" in problems
    assert "'OTEL_SERVICE_NAME'" not in problems and "'REDIS_URL'" not in problems
    assert "unrecognized arguments: --no-local-wroker" in problems
    assert "env_file 'missing.env' does not exist" in problems
    assert "does not publish port 3000" in problems
    assert "no service runs 'durabot discord'" in problems


def test_compose_check_reads_env_files(tmp_path: Path) -> None:
    (tmp_path / "bad.env").write_text("# a comment\nDURABOT_MODEL=x\nDURABOT_MODLE=y\n")
    doc = {
        "services": {
            "w": {
                "build": ".",
                "command": ["worker"],
                "env_file": ["bad.env"],
                "deploy": {"replicas": 2},
                "stop_grace_period": "20s",
            }
        }
    }
    problems = "\n".join(check_compose(doc, tmp_path))
    assert "unknown environment variable 'DURABOT_MODLE'" in problems
    assert "'DURABOT_MODEL'" not in problems
    assert "stop_grace_period must exceed the worker's drain" in problems


def test_env_example_check_catches_missing_and_unknown() -> None:
    text = "\n".join(f"{k}=" for k in ENV_VARS if k != "REDIS_URL") + "\n# DURABOT_TYPO=1\n"
    assert check_env_example(text) == [
        "env.example: unknown environment variable 'DURABOT_TYPO'",
        "env.example: REDIS_URL is not listed",
    ]


BAD_K8S = """
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {TEMPORAL_ADDRESS: "t:7233", DURABOT_TASKQUEUE: durabot}
---
apiVersion: v1
kind: Secret
metadata: {name: tokens}
data: {SLACK_APP_TOKEN: eGFwcA==}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: w}
spec:
  template:
    metadata: {labels: {app: w}}
    spec:
      terminationGracePeriodSeconds: 30
      containers:
        - name: w
          image: registry.example/durabot:1.0
          args: ["worker", "--no-local-worker"]
          envFrom: [{configMapRef: {name: cfg}}, {secretRef: {name: missing}}]
          ports: [{name: health, containerPort: 9464}]
          readinessProbe: {httpGet: {path: /healthz, port: health}}
          livenessProbe: {httpGet: {path: /healthz, port: metrics}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: s}
spec:
  template:
    metadata: {labels: {app: s}}
    spec:
      containers:
        - name: s
          image: durabot
          args: ["slack"]
          env: [{name: SLACK_BOT_TOKN, value: x}]
          envFrom: [{secretRef: {name: tokens}}]
          ports: [{name: http, containerPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: d}}
    spec:
      containers: [{name: d, image: durabot, command: ["python"], args: ["discord"]}]
"""


def test_k8s_check_catches_mistakes() -> None:
    problems = "\n".join(check_k8s([d for d in yaml.safe_load_all(BAD_K8S) if d]))
    for expected in [
        "unrecognized arguments: --no-local-worker",
        "via ConfigMap 'cfg': unknown environment variable 'DURABOT_TASKQUEUE'",
        "Secret 'missing' is not in the manifests",
        "readinessProbe checks '/healthz', not '/readyz'",
        "livenessProbe port 'metrics' is not a container port",
        f"terminationGracePeriodSeconds 30 must exceed the {worker_drain_seconds():g}s drain",
        "no HorizontalPodAutoscaler on CPU targets it",
        "unknown environment variable 'SLACK_BOT_TOKN'",
        "container port 3000 (HTTP mode) is not declared",
        "no Service selects the pods and targets port 3000",
        "sets SLACK_APP_TOKEN (Socket Mode, not HTTP)",
        "Secret 'tokens': use stringData",
        "command ['python'] is not durabot",
        "discord: replicas must be 1",
        "discord: strategy must be Recreate",
    ]:
        assert expected in problems, expected


@pytest.mark.parametrize(
    "argv", [["worker"], ["slack", "--no-local-worker"], ["discord"], ["dev", "--no-chat"]]
)
def test_real_commands_parse(argv: list[str]) -> None:
    assert check_command(argv, "x") == []
