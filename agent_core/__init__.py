"""agent_core: durable AI agents on Temporal.

    from agent_core import Agent, AgentWorker, TemporalConfig, OpenAIChatModel, tool, ToolContext
"""

from .agent import Agent
from .handle import RunHandle, RunResult
from .errors import (
    AgentRuntimeError,
    ApprovalError,
    ApprovalAlreadyDecided,
    ApprovalNotAllowed,
    ApprovalUnknown,
    ConversationNotFound,
    DurabotError,
    FingerprintMismatch,
    NoWorkerError,
    RunAborted,
    RunCancelled,
    RunFailed,
    TemporalUnavailable,
    UserError,
)
from .events import EventBus, InMemoryEventBus, TextAccumulator
from .hooks import AbortRun, BlockToolArguments, HookContext, Hooks, RedactSecrets
from .mcp import MCPServer, load_mcp_tools, parse_mcp_env
from .model import ChatModel, DemoModel, OpenAIChatModel
from .options import Limits, ToolOptions
from .store import InMemoryTranscriptStore, TranscriptStore
from .temporal import TemporalConfig
from .attachments import FileLimits
from .blobs import BlobMissing, BlobStore, LocalBlobStore, S3BlobStore
from .tools import Attachment, Tool, ToolContext, ToolOutput, load_tools, tool
from .types import (
    AgentEvent,
    AgentMode,
    ApprovalInfo,
    BlobRef,
    ApprovalPolicy,
    ChatMessage,
    ConversationStatus,
    Delivery,
    DeliveryTarget,
    Timeouts,
    TurnStatus,
    timeouts_for,
)
from .worker import AgentWorker

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
