"""The agent's typed settings, read once at the entry point from the environment and ``.env``.

Nothing deeper reads ``os.environ``: the entry point builds ``Settings.load()`` and passes it down.
Tests pass a mapping: ``Settings.load(env={...}, dotenv=None)``. This module knows no chat platform:
each adapter reads its own variables from the same values (``read_env``), and the process composes
the parts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .errors import UserError
from .types import ApprovalPolicy

# Every variable the project reads, with its default. deploy/ manifests are checked against this list.
ENV_VARS: dict[str, str | None] = {
    "TEMPORAL_ADDRESS": "localhost:7233",
    "TEMPORAL_NAMESPACE": "default",
    "TEMPORAL_API_KEY": None,
    "TEMPORAL_TLS_CERT": None,
    "TEMPORAL_TLS_KEY": None,
    "TEMPORAL_TLS_CA": None,
    "TEMPORAL_TLS_SERVER_NAME": None,
    "TEMPORAL_UI_URL": None,
    "DURABOT_TASK_QUEUE": "durabot",
    "DURABOT_AGENT_NAME": "durabot",
    "DURABOT_MODEL": "gpt-4o-mini",
    "DURABOT_CONTEXT_TOKENS": None,
    "DURABOT_SYSTEM_PROMPT": "You are durabot, a helpful assistant in a team chat. Be concise.",
    "DURABOT_TOOLS": "",
    "DURABOT_LOCAL_TOOLS": "",
    "DURABOT_MCP_SERVERS": "",
    "DURABOT_APPROVAL": "marked",
    "DURABOT_APPROVERS": "requester",
    "DURABOT_ADMINS": "",
    "DURABOT_LOCAL_WORKER": "1",
    "DURABOT_HTTP_PORT": "3000",
    "DURABOT_LOG_LEVEL": "INFO",
    "DURABOT_LOG_FORMAT": "text",
    "DURABOT_METRICS_PORT": "9464",
    "REDIS_URL": None,
    "OPENAI_API_KEY": None,
    "OPENAI_BASE_URL": None,
    "DURABOT_SECRET_KEY": None,
    "DURABOT_PROFILES": None,
    "DURABOT_BLOB_URL": None,
    "DURABOT_BLOB_ENDPOINT": None,
    "DURABOT_MAX_FILE_MB": "20",
    "DURABOT_MAX_FILES": "10",
    "DURABOT_FILE_TEXT_CHARS": "50000",
    "DURABOT_BUILD_ID": None,  # unset: unversioned worker; "auto": derived from version and code
    # What the Temporal worker controller sets in the pods it runs; DURABOT_BUILD_ID wins over the first.
    "TEMPORAL_WORKER_BUILD_ID": None,
    "TEMPORAL_DEPLOYMENT_NAME": None,  # default: the task queue, "." made "-"
}

SECRET_VARS = ("TEMPORAL_API_KEY", "OPENAI_API_KEY", "DURABOT_SECRET_KEY")


def read_env(env: Mapping[str, str] | None = None, dotenv: str | None = ".env") -> dict[str, str]:
    """The variables the process sees: ``.env`` first, the environment (or ``env``) over it."""
    values: dict[str, str] = {}
    if dotenv and Path(dotenv).is_file():
        from dotenv import dotenv_values

        values.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    values.update(os.environ if env is None else env)
    return values


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _file_limits(get) -> dict:
    def number(name: str, kind: type) -> float:
        raw = get(name) or ENV_VARS[name] or "0"
        try:
            value = kind(raw)
        except ValueError:
            value = -1
        if value <= 0:
            raise UserError(f"{name}={raw!r} is not a positive number")
        return value

    return dict(max_file_mb=number("DURABOT_MAX_FILE_MB", float), max_files=int(number("DURABOT_MAX_FILES", int)),
                file_text_chars=int(number("DURABOT_FILE_TEXT_CHARS", int)))


@dataclass
class Settings:
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_api_key: str | None = field(default=None, repr=False)
    temporal_tls_cert: str | None = None
    temporal_tls_key: str | None = None
    temporal_tls_ca: str | None = None
    temporal_tls_server_name: str | None = None
    temporal_ui_url: str | None = None
    task_queue: str = "durabot"
    agent_name: str = "durabot"
    model: str = "gpt-4o-mini"
    context_tokens: int | None = None  # the model's context window; None: known for the model's name
    system_prompt: str = ENV_VARS["DURABOT_SYSTEM_PROMPT"] or ""
    tools: str = ""
    local_tools: list[str] = field(default_factory=list)  # run as local activities (ToolOptions.local_tools)
    mcp_servers: str = ""  # see agent_core.mcp.parse_mcp_env
    approval: ApprovalPolicy = ApprovalPolicy.MARKED
    approvers: list[str] = field(default_factory=lambda: ["requester"])  # requester | anyone | user ids
    admins: list[str] = field(default_factory=list)
    local_worker: bool = True
    http_port: int = 3000
    log_level: str = "INFO"
    log_json: bool = False
    metrics_port: int = 9464  # /healthz, /readyz, /metrics; 0 turns them off
    redis_url: str | None = None
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    secret_key: str | None = field(default=None, repr=False)  # encrypts Temporal payloads (agent_core.codec)
    profiles: str | None = None  # a profiles file (agent_core.profiles), read by the entry point
    blob_url: str | None = None  # where file bytes live: a directory (.durabot/blobs) or s3://bucket/prefix
    blob_endpoint: str | None = None  # an S3-compatible server's address (MinIO...); unset: AWS_ENDPOINT_URL or AWS
    max_file_mb: float = 20.0  # a file over this size is refused with a notice
    max_files: int = 10  # files read per message
    file_text_chars: int = 50_000  # characters of a text file or PDF the model reads; the rest is cut
    build_id: str | None = None  # DURABOT_BUILD_ID; see agent_core.versioning
    deployment_name: str | None = None  # TEMPORAL_DEPLOYMENT_NAME; None derives it from the task queue

    @property
    def use_demo_model(self) -> bool:
        return not (self.openai_api_key or self.openai_base_url)

    def secrets(self) -> list[str]:
        return [v for v in (self.temporal_api_key, self.openai_api_key, self.secret_key) if v]

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, dotenv: str | None = ".env") -> "Settings":
        return cls.from_values(read_env(env, dotenv))

    @classmethod
    def from_values(cls, values: Mapping[str, str]) -> "Settings":
        def get(name: str) -> str | None:
            value = values.get(name)
            if value is None or value == "":
                return ENV_VARS[name]
            return value

        approval = (get("DURABOT_APPROVAL") or "marked").lower()
        try:
            policy = ApprovalPolicy(approval)
        except ValueError:
            raise UserError(f"DURABOT_APPROVAL={approval!r} is not one of: marked, all, none") from None
        port = get("DURABOT_HTTP_PORT") or "3000"
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise UserError(f"DURABOT_HTTP_PORT={port!r} is not a port number")
        address = get("TEMPORAL_ADDRESS") or "localhost:7233"
        host, sep, tport = address.rpartition(":")
        if not sep or not host or not tport.isdigit():
            raise UserError(f"TEMPORAL_ADDRESS={address!r} is not host:port (for example localhost:7233)")
        approvers = _csv(get("DURABOT_APPROVERS")) or ["requester"]
        metrics_port = get("DURABOT_METRICS_PORT") or "0"
        if not metrics_port.isdigit() or int(metrics_port) > 65535:
            raise UserError(f"DURABOT_METRICS_PORT={metrics_port!r} is not a port number (0 turns it off)")
        log_format = (get("DURABOT_LOG_FORMAT") or "text").lower()
        if log_format not in ("text", "json"):
            raise UserError(f"DURABOT_LOG_FORMAT={log_format!r} is not one of: text, json")
        context_tokens = get("DURABOT_CONTEXT_TOKENS")
        if context_tokens is not None and (not context_tokens.strip().isdigit() or int(context_tokens) < 2_000):
            raise UserError(f"DURABOT_CONTEXT_TOKENS={context_tokens!r} is not a number of tokens of at least "
                            "2000 (the model's context window, for example 128000)")
        from .codec import parse_keys

        files = _file_limits(get)
        secret_key = get("DURABOT_SECRET_KEY")
        parse_keys(secret_key)  # a malformed key stops start-up here, with how to make one
        from .versioning import check_build_id

        build_id = check_build_id(get("DURABOT_BUILD_ID") or get("TEMPORAL_WORKER_BUILD_ID"))
        return cls(
            temporal_address=address,
            temporal_namespace=get("TEMPORAL_NAMESPACE") or "default",
            temporal_api_key=get("TEMPORAL_API_KEY"),
            temporal_tls_cert=get("TEMPORAL_TLS_CERT"),
            temporal_tls_key=get("TEMPORAL_TLS_KEY"),
            temporal_tls_ca=get("TEMPORAL_TLS_CA"),
            temporal_tls_server_name=get("TEMPORAL_TLS_SERVER_NAME"),
            temporal_ui_url=get("TEMPORAL_UI_URL"),
            task_queue=get("DURABOT_TASK_QUEUE") or "durabot",
            agent_name=get("DURABOT_AGENT_NAME") or "durabot",
            model=get("DURABOT_MODEL") or "gpt-4o-mini",
            context_tokens=int(context_tokens) if context_tokens is not None else None,
            system_prompt=get("DURABOT_SYSTEM_PROMPT") or "",
            tools=get("DURABOT_TOOLS") or "",
            local_tools=_csv(get("DURABOT_LOCAL_TOOLS")),
            mcp_servers=get("DURABOT_MCP_SERVERS") or "",
            approval=policy,
            approvers=approvers,
            admins=_csv(get("DURABOT_ADMINS")),
            local_worker=(get("DURABOT_LOCAL_WORKER") or "1").lower() not in ("0", "false", "no", "off"),
            http_port=int(port),
            log_level=(get("DURABOT_LOG_LEVEL") or "INFO").upper(),
            log_json=log_format == "json",
            metrics_port=int(metrics_port),
            redis_url=get("REDIS_URL"),
            openai_api_key=get("OPENAI_API_KEY"),
            openai_base_url=get("OPENAI_BASE_URL"),
            secret_key=secret_key,
            profiles=get("DURABOT_PROFILES"),
            blob_url=get("DURABOT_BLOB_URL"),
            blob_endpoint=get("DURABOT_BLOB_ENDPOINT"),
            **files,
            build_id=build_id,
            deployment_name=get("TEMPORAL_DEPLOYMENT_NAME"),
        )

    def file_limits(self):  # -> FileLimits
        from .attachments import FileLimits

        return FileLimits(max_bytes=int(self.max_file_mb * 1024 * 1024), max_files=self.max_files,
                          text_chars=self.file_text_chars)

    def blob_store(self):  # -> BlobStore
        from .blobs import blob_store_from_url

        return blob_store_from_url(self.blob_url, self.blob_endpoint)

    def build(self):  # -> versioning.BuildInfo
        """This process's build: its id and whether its worker runs as a deployment version."""
        from .versioning import build_info

        return build_info(self.build_id, self.task_queue, self.deployment_name)

    def temporal_config(self):  # -> TemporalConfig
        from .temporal import TemporalConfig

        return TemporalConfig.from_address(
            self.temporal_address, namespace=self.temporal_namespace, task_queue=self.task_queue,
            api_key=self.temporal_api_key, tls_cert=self.temporal_tls_cert, tls_key=self.temporal_tls_key,
            tls_ca=self.temporal_tls_ca, tls_server_name=self.temporal_tls_server_name,
            secret_key=self.secret_key,
        )

