"""An ``Agent``'s options in small groups: ``Limits`` (how far a turn and a conversation go),
``ToolOptions`` (how tools are gated and extended) and ``Timeouts`` (types.py).

The fields of ``Limits`` and ``ToolOptions`` are also accepted as keywords of ``Agent`` itself, as
they always were: ``Agent("a", max_iterations=5)`` and ``Agent("a", limits=Limits(max_iterations=5))``
build the same agent. Giving a group and one of its fields as a keyword is refused as ambiguous.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import UserError
from .types import ApprovalPolicy


@dataclass
class Limits:
    max_iterations: int = 10  # model rounds in one turn; the last one may call no tool
    # Tokens a model round may send, the model's whole context window (room for the answer is kept
    # out of it). None: DURABOT_CONTEXT_TOKENS's default for the model's name (agent_core.tokens).
    context_tokens: int | None = None
    context_messages: int = 100  # transcript messages the workflow keeps its own copy of
    context_chars: int | None = None  # at most this many characters of messages per round (None: no cap)
    max_history_events: int = 10_000  # a conversation's run continues as new past this history length
    max_depth: int = 2  # how deep sub-agents may delegate further

    def check(self) -> None:
        if self.max_iterations < 1:
            raise UserError("max_iterations must be at least 1")
        if self.context_tokens is not None and self.context_tokens < 2_000:
            raise UserError(f"context_tokens={self.context_tokens} is too small for a conversation; give the "
                            "model's context window in tokens (at least 2000)")


@dataclass
class ToolOptions:
    approval: ApprovalPolicy | str = ApprovalPolicy.MARKED  # which tool calls wait for a person's decision
    hooks: Sequence[Any] = ()  # Hooks around model rounds and tool calls, in order
    mcp_servers: Sequence[Any] = ()  # MCPServer: their tools are listed when the agent starts
    # Tools whose approvals are never given for a whole thread ("always allow in this thread").
    admin_only: Sequence[str] = ()
    # Tools that run as local activities: inside the workflow task that asked for them, no round trip
    # through the server. For short calls only (a lookup, a calculation): a call has LOCAL_TOOL_TIMEOUT
    # seconds, is cancelled only once it returns, and runs again if the worker dies before the
    # workflow task completes (README, "Local tools").
    local_tools: Sequence[str] = ()

    def __post_init__(self) -> None:
        self.hooks, self.mcp_servers = list(self.hooks), list(self.mcp_servers)
        self.admin_only = sorted(set(self.admin_only))
        self.local_tools = sorted(set(self.local_tools))
        try:
            self.approval = ApprovalPolicy(self.approval)
        except ValueError:
            raise UserError(f"approval policy {self.approval!r} is not one of marked, all, none") from None


def grouped(keywords: dict[str, Any], limits: Limits | None, tools: ToolOptions | None) -> tuple[Limits, ToolOptions]:
    """The groups, with the fields given as separate keywords filled in."""
    out = []
    for cls, given, name in ((Limits, limits, "limits"), (ToolOptions, tools, "tool_options")):
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        mine = {k: keywords.pop(k) for k in list(keywords) if k in names}
        if given is not None and mine:  # which one was meant?
            raise UserError(f"pass {', '.join(sorted(mine))} inside {name}=... or as keywords, not both")
        out.append(given if given is not None else cls(**mine))
    if keywords:
        raise TypeError(f"Agent() got an unexpected keyword argument {next(iter(keywords))!r}")
    return out[0], out[1]
