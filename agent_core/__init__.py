"""agent_core: durable AI agents on Temporal.

    from agent_core import Agent, AgentWorker, TemporalConfig, OpenAIChatModel, tool, ToolContext
"""

from __future__ import annotations

import importlib
from typing import Any

# Names are imported on first use (PEP 562): a process that needs one module (a CLI command, the
# workflow sandbox, a settings check) does not pay for the Temporal client, openai and MCP at import.
_EXPORTS = {
    "Agent": ".agent",
    "RunHandle": ".handle",
    "RunResult": ".handle",
    "AgentRuntimeError": ".errors",
    "ApprovalError": ".errors",
    "ApprovalAlreadyDecided": ".errors",
    "ApprovalNotAllowed": ".errors",
    "ApprovalUnknown": ".errors",
    "ConversationNotFound": ".errors",
    "DurabotError": ".errors",
    "FingerprintMismatch": ".errors",
    "NoWorkerError": ".errors",
    "RunAborted": ".errors",
    "RunCancelled": ".errors",
    "RunFailed": ".errors",
    "TemporalUnavailable": ".errors",
    "UserError": ".errors",
    "EventBus": ".events",
    "InMemoryEventBus": ".events",
    "TextAccumulator": ".events",
    "AbortRun": ".hooks",
    "BlockToolArguments": ".hooks",
    "HookContext": ".hooks",
    "Hooks": ".hooks",
    "RedactSecrets": ".hooks",
    "MCPServer": ".mcp",
    "load_mcp_tools": ".mcp",
    "parse_mcp_env": ".mcp",
    "ChatModel": ".model",
    "DemoModel": ".model",
    "OpenAIChatModel": ".model",
    "Limits": ".options",
    "ToolOptions": ".options",
    "InMemoryTranscriptStore": ".store",
    "TranscriptStore": ".store",
    "TemporalConfig": ".temporal",
    "FileLimits": ".attachments",
    "BlobMissing": ".blobs",
    "BlobStore": ".blobs",
    "LocalBlobStore": ".blobs",
    "S3BlobStore": ".blobs",
    "Attachment": ".tools",
    "Tool": ".tools",
    "ToolContext": ".tools",
    "ToolOutput": ".tools",
    "load_tools": ".tools",
    "tool": ".tools",
    "AgentEvent": ".types",
    "AgentMode": ".types",
    "ApprovalInfo": ".types",
    "BlobRef": ".types",
    "ApprovalPolicy": ".types",
    "ChatMessage": ".types",
    "ConversationStatus": ".types",
    "Delivery": ".types",
    "DeliveryTarget": ".types",
    "Timeouts": ".types",
    "TurnStatus": ".types",
    "timeouts_for": ".types",
    "AgentWorker": ".worker",
}

__all__ = [
    "Attachment", "BlobMissing", "BlobRef", "BlobStore", "FileLimits", "LocalBlobStore", "S3BlobStore", "ToolOutput",
    "MCPServer", "load_mcp_tools", "parse_mcp_env",
    "AbortRun", "BlockToolArguments", "HookContext", "Hooks", "RedactSecrets", "RunAborted", "TextAccumulator",
    "Agent", "AgentEvent", "AgentMode", "AgentRuntimeError", "AgentWorker", "ApprovalError", "ApprovalInfo",
    "ApprovalAlreadyDecided",
    "ApprovalNotAllowed",
    "ApprovalUnknown",
    "ApprovalPolicy", "ChatMessage", "ChatModel", "ConversationNotFound", "ConversationStatus", "Delivery",
    "DeliveryTarget", "DemoModel", "DurabotError", "EventBus", "FingerprintMismatch", "InMemoryEventBus",
    "InMemoryTranscriptStore", "Limits", "NoWorkerError", "OpenAIChatModel", "RunCancelled", "RunFailed", "RunHandle",
    "RunResult", "TemporalConfig", "TemporalUnavailable", "Timeouts", "Tool", "ToolContext", "ToolOptions", "TranscriptStore",
    "TurnStatus", "UserError", "load_tools", "timeouts_for", "tool",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
