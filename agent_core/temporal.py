"""Connecting to Temporal: a typed config, and a connect that fails quickly with a clear message."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client
from temporalio.service import TLSConfig

from temporalio.service import RPCError, RPCStatusCode

from .errors import ApprovalError, ConversationNotFound, NoWorkerError, TemporalUnavailable, UserError


@dataclass
class TemporalConfig:
    host: str = "localhost"
    port: int = 7233
    namespace: str = "default"
    task_queue: str = "durabot"
    api_key: str | None = None  # Temporal Cloud API key (implies TLS)
    tls_cert: str | None = None  # path to a client certificate (mTLS)
    tls_key: str | None = None  # path to its private key
    tls_ca: str | None = None  # path to the CA that signed the server's certificate (private clusters)
    tls_server_name: str | None = None  # the name on the server's certificate, if not the host
    interceptors: tuple = ()  # client interceptors, e.g. tracing
    connect_timeout: float = 10.0
    secret_key: str | None = field(default=None, repr=False)  # DURABOT_SECRET_KEY: see agent_core.codec
    payload_codec: object | None = None  # a codec of your own instead of durabot's (compression, encryption)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def from_address(cls, address: str, **kwargs: object) -> "TemporalConfig":
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise UserError(f"TEMPORAL_ADDRESS {address!r} is not host:port (for example localhost:7233)")
        return cls(host=host, port=int(port), **kwargs)  # type: ignore[arg-type]

    def _tls(self) -> TLSConfig | bool:
        if self.tls_cert or self.tls_key:
            if not (self.tls_cert and self.tls_key):
                raise UserError("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together")
        if not (self.tls_cert or self.tls_ca or self.tls_server_name):
            return bool(self.api_key)
        try:
            cert = Path(self.tls_cert).read_bytes() if self.tls_cert else None
            key = Path(self.tls_key).read_bytes() if self.tls_key else None
            ca = Path(self.tls_ca).read_bytes() if self.tls_ca else None
        except OSError as exc:
            raise UserError(f"cannot read a Temporal TLS file: {exc}") from None
        return TLSConfig(client_cert=cert, client_private_key=key, server_root_ca_cert=ca,
                         domain=self.tls_server_name)

    def data_converter(self):  # -> temporalio.converter.DataConverter
        """Every client and worker the project builds encodes payloads with this (see agent_core.codec)."""
        from .codec import data_converter

        return data_converter(self.secret_key, self.payload_codec)  # type: ignore[arg-type]

    async def connect(self) -> Client:
        tls = self._tls()
        converter = self.data_converter()
        try:
            return await asyncio.wait_for(
                Client.connect(self.address, namespace=self.namespace, api_key=self.api_key, tls=tls,
                               interceptors=list(self.interceptors), data_converter=converter),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise TemporalUnavailable(
                f"Temporal at {self.address} did not answer within {self.connect_timeout:g}s; "
                "is the server running (durabot dev starts one) and TEMPORAL_ADDRESS right?"
            ) from None
        except RuntimeError as exc:  # the core SDK reports connection failures as RuntimeError
            if tls and any(w in str(exc) for w in ("certificate", "UnknownIssuer", "tls", "TLS", "handshake")):
                raise TemporalUnavailable(
                    f"TLS to Temporal at {self.address} failed: {exc}. Check TEMPORAL_TLS_CA (the server's CA), "
                    "TEMPORAL_TLS_SERVER_NAME and the client certificate."
                ) from None
            raise TemporalUnavailable(
                f"cannot connect to Temporal at {self.address}: {exc}. Start the server "
                "(durabot dev starts one) or fix TEMPORAL_ADDRESS."
            ) from None


def rpc_error(exc: RPCError, address: str, conversation_id: str | None = None, approval: bool = False) -> Exception:
    """The error to raise for a failed Temporal request: unavailable, ended conversation, or other."""
    if exc.status == RPCStatusCode.UNAVAILABLE:
        return TemporalUnavailable(f"Temporal at {address} is unavailable: {exc.message}")
    if exc.status == RPCStatusCode.NOT_FOUND and conversation_id is not None:
        if approval:
            return ApprovalError(f"conversation {conversation_id!r} has ended; its approvals are closed")
        return ConversationNotFound(f"no running conversation {conversation_id!r}")
    return TemporalUnavailable(f"Temporal request failed: {exc.message}")


async def wait_for_poller(client: Client, task_queue: str, address: str) -> None:
    """Return once a worker polls ``task_queue`` (one that is just starting gets two seconds to show
    up); raise NoWorkerError if none does."""
    from datetime import timedelta

    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    request = DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    for _ in range(20):
        try:
            resp = await client.workflow_service.describe_task_queue(request, timeout=timedelta(seconds=5))
        except RPCError as exc:
            raise rpc_error(exc, address) from None
        if resp.pollers:
            return
        await asyncio.sleep(0.1)
    raise NoWorkerError(
        f"no worker polls task queue {task_queue!r} in namespace {client.namespace!r}; "
        "start one with 'durabot worker' or use local_worker=True"
    )


def connection(temporal: TemporalConfig | None, temporal_client: tuple[Client, str] | None,
                ) -> tuple[TemporalConfig | None, Client | None, str]:
    """The agent's Temporal configuration (None: the caller owns the client), client and task queue."""
    if temporal is not None and temporal_client is not None:
        raise UserError(
            "pass either temporal=TemporalConfig(...) (the agent connects and owns the client) or "
            "temporal_client=(client, task_queue) (you own the client), not both"
        )
    if temporal_client is None:
        config = temporal if temporal is not None else TemporalConfig()
        return config, None, config.task_queue
    if not isinstance(temporal_client, tuple) or len(temporal_client) != 2 or not temporal_client[1]:
        raise UserError("temporal_client must be a (client, task_queue) tuple")
    return None, temporal_client[0], temporal_client[1]
