"""Counting the calls a process makes to the Temporal server, at the client's RPC layer.

``CountingServiceClient`` is a Temporal ``ServiceClient`` that hands every workflow-service call to a
real connected one and records its name and the workflow id it is about. A ``Client`` built on it
(``counting_client``) is what an Agent under test uses, so a test sees every request the adapter
sends, whichever of our functions sent it. A worker on the same client polls through the core
client underneath (``worker_service_client``), so its polls are not counted; calls made by
activities through ``activity.client()`` are, with their workflow id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import google.protobuf.message
from temporalio.client import Client
from temporalio.service import ConnectConfig, ServiceClient

from agent_core import TemporalConfig


@dataclass(frozen=True)
class Call:
    rpc: str  # e.g. describe_workflow_execution, execute_multi_operation
    workflow_id: str
    detail: str  # the update's or query's name, when it has one


class CountingServiceClient(ServiceClient):
    def __init__(self, inner: ServiceClient) -> None:
        super().__init__(inner.config)
        self.inner = inner
        self.calls: list[Call] = []

    @property
    def worker_service_client(self) -> Any:
        return self.inner.worker_service_client

    def update_rpc_metadata(self, metadata: Mapping[str, str | bytes]) -> None:
        self.inner.update_rpc_metadata(metadata)

    def update_api_key(self, api_key: str | None) -> None:
        self.inner.update_api_key(api_key)

    async def _rpc_call(self, rpc: str, req: google.protobuf.message.Message, resp_type: Any, *, service: str,
                        retry: bool, metadata: Mapping[str, str | bytes], timeout: timedelta | None) -> Any:
        if service == "workflow":
            self.calls.append(Call(rpc, *_about(req)))
        return await self.inner._rpc_call(rpc, req, resp_type, service=service, retry=retry,
                                          metadata=metadata, timeout=timeout)

    def of(self, workflow_id: str, *, ignore: tuple[str, ...] = ()) -> list[Call]:
        """The calls about one workflow, less those whose update or query name is in ``ignore``."""
        return [c for c in self.calls if c.workflow_id == workflow_id and c.detail not in ignore]


def _about(req: Any) -> tuple[str, str]:
    """The workflow id a request is about, and its update or query name."""
    if req.DESCRIPTOR.name == "ExecuteMultiOperationRequest":
        for op in req.operations:
            if op.HasField("update_workflow"):
                u = op.update_workflow
                return u.workflow_execution.workflow_id, u.request.input.name
        return "", ""
    if req.DESCRIPTOR.name == "UpdateWorkflowExecutionRequest":
        return req.workflow_execution.workflow_id, req.request.input.name
    if req.DESCRIPTOR.name == "QueryWorkflowRequest":
        return req.execution.workflow_id, req.query.query_type
    for field in ("execution", "workflow_execution"):
        if field in req.DESCRIPTOR.fields_by_name:
            return getattr(req, field).workflow_id, ""
    if "workflow_id" in req.DESCRIPTOR.fields_by_name:
        return req.workflow_id, ""
    return "", ""


async def counting_client(config: TemporalConfig) -> tuple[Client, CountingServiceClient]:
    """A client of the test server whose every workflow-service call is recorded."""
    inner = await ServiceClient.connect(ConnectConfig(target_host=config.address))
    counting = CountingServiceClient(inner)
    return Client(counting, namespace=config.namespace, data_converter=config.data_converter()), counting
